# tests/unit: host modules. check_config reads real INI files (libinih) and resolves them
# against the loader fixture plugin tests/plugins/tp_a_valid.so; cli.test drives the
# built ./equimod (plugins, describe, config and their errors).
check_PROGRAMS += tests/unit/check_config
TESTS += tests/unit/check_config
tests_unit_check_config_SOURCES = tests/unit/check_config.c
tests_unit_check_config_CFLAGS = $(TEST_CFLAGS)
tests_unit_check_config_LDADD = libeqmhost.la $(TEST_LIBS)

TESTS += tests/unit/cli.test
EXTRA_DIST += tests/unit/cli.test

# configs.test: every configs/*.ini resolves with the real plugins and has the t layout
# length of METHOD.md §4.
TESTS += tests/unit/configs.test
EXTRA_DIST += tests/unit/configs.test

# help.test: every command listed by `equimod --help` answers `--help`.
TESTS += tests/unit/help.test
EXTRA_DIST += tests/unit/help.test

# man.test: the man page documents exactly the commands `equimod --help` lists.
TESTS += tests/unit/man.test
EXTRA_DIST += tests/unit/man.test
