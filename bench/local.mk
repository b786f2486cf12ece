# bench/ scripts are run on demand, never by make check
