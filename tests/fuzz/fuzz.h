/* tests/fuzz/fuzz.h: what every harness of tests/fuzz/ shares.
 *
 * A harness is one C file defining LLVMFuzzerTestOneInput (the libFuzzer entry point) over
 * the real host code (libeqmhost.la, the real plugins through the registry). It is built
 * twice:
 *   - with clang -fsanitize=fuzzer,address,undefined as tests/fuzz/fuzz_NAME (`make fuzz`,
 *     configure --enable-fuzzing: see tests/fuzz/README.md);
 *   - with the normal compiler as tests/fuzz/replay_NAME, linked with replay.c, a main()
 *     that feeds every file of tests/fuzz/regress/NAME/ and tests/fuzz/corpus/NAME/ to the
 *     same entry point (part of `make check`, and of the ASan pass).
 * A harness reports a broken invariant with fuzz_fail() (prints, then abort(): a crash
 * for libFuzzer, a failed test for the replay).
 * Scratch files go to one private folder per process (fuzz_dir(), under /dev/shm when it
 * exists), removed at exit.
 */
#ifndef EQM_TESTS_FUZZ_H
#define EQM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Private scratch folder of this process (created on first use; never NULL: aborts if
 * it cannot be made). */
const char *fuzz_dir(void);
/* Write data to fuzz_dir()/name (replacing it) and return the path (static storage, one
 * per name slot: valid until the next call with the same name). Aborts on write errors. */
const char *fuzz_file(const char *name, const void *data, size_t size);
/* Remove fuzz_dir()/name if present. */
void fuzz_unlink(const char *name);
/* Host logging off (the harnesses exercise error paths by the million). */
void fuzz_quiet(void);
/* The folder of the built plugins: $EQUIMOD_PLUGIN_PATH, else FUZZ_PLUGIN_DIR (the
 * build tree's plugin-dir, compiled in). */
const char *fuzz_plugin_dir(void);
/* The registry of the built plugins (fuzz_plugin_dir()), scanned on first use with host
 * logging off; fuzz_fail()s when it holds no plugin. */
struct eqm_registry *fuzz_registry(void);
_Noreturn void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
