# ftpsd — FTP over TLS server. `make`, `make check`, `make demo`, `make install`.
VERSION    = 0.1.0
PREFIX    ?= /usr/local
unitdir   ?= $(PREFIX)/lib/systemd/system
sbindir   ?= $(PREFIX)/sbin
sysconfdir ?= /etc
datadir   ?= $(PREFIX)/share
mandir    ?= $(datadir)/man
# Where the shipped logrotate file rotates the transfer log (xferlog_file), and the group that
# may read it: adm where there is one (Debian's group for reading logs), else root.
logdir    ?= /var/log/ftpsd
loggroup  ?= $(shell getent group adm >/dev/null 2>&1 && echo adm || echo root)
DESTDIR   ?=

CC        ?= cc
CFLAGS    ?= -O2 -g
# snprintf into fixed buffers truncates on purpose (bounded log and reply text).
WARN       = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-format-truncation
HARDEN     = -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE
ALL_CFLAGS = -std=gnu11 $(WARN) $(HARDEN) $(CFLAGS)
ALL_CPPFLAGS = -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -DFTPSD_VERSION='"$(VERSION)"' \
	-DFTPSD_CONFIG_FILE='"$(sysconfdir)/ftpsd.conf"' -DFTPSD_EMPTY_DIR='"$(datadir)/ftpsd/empty"' \
	$(CPPFLAGS)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--as-needed $(LDFLAGS)
LIBS       = -lssl -lcrypto -lpam -lcap-ng -lseccomp

SRCS = $(wildcard src/*.c)
OBJS = $(SRCS:src/%.c=build/%.o)
# Everything but main.c, for the unit tests.
LIBOBJS = $(filter-out build/main.o,$(OBJS))

UNIT_SRCS = $(wildcard tests/unit/*_test.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

all: ftpsd

# The same sources with FTPSD_TEST_HOOKS, for tests that need a process to misbehave on
# purpose (a worker making a forbidden system call). Never installed.
HOOK_OBJS = $(SRCS:src/%.c=build/hooks/%.o)
build/ftpsd-testhooks: $(HOOK_OBJS)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(HOOK_OBJS) $(LIBS)

build/hooks/%.o: src/%.c | build
	@mkdir -p build/hooks
	@$(if $(V),,echo "  CC      $< (test hooks)")
	$(Q)$(CC) $(ALL_CPPFLAGS) -DFTPSD_TEST_HOOKS $(ALL_CFLAGS) -MMD -MP -c -o $@ $<
build/hooks/config.o build/hooks/main.o: build/paths.stamp
-include $(HOOK_OBJS:.o=.d)

ftpsd: $(OBJS)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(OBJS) $(LIBS)

Q = $(if $(V),,@)

build/%.o: src/%.c | build
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# Installation paths are compiled in: rebuild what uses them when they change.
build/paths.stamp: FORCE | build
	@echo '$(sysconfdir) $(datadir) $(VERSION)' | cmp -s - $@ || \
		echo '$(sysconfdir) $(datadir) $(VERSION)' > $@
build/config.o build/main.o: build/paths.stamp
FORCE:

build:
	mkdir -p build build/tests

build/tests/%: tests/unit/%.c $(LIBOBJS) tests/unit/unit.h | build
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ $< $(LIBOBJS) $(LIBS)

-include $(OBJS:.o=.d)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do ./$$t; done

deps:
	@sh tests/lib/install-deps.sh

check: deps all unit build/ftpsd-testhooks
	@./tests/run-integration.sh
	@$(MAKE) --no-print-directory fuzz-smoke

demo: all
	@sh contrib/demo.sh

# What make demo created (accounts, /etc/pam.d/ftpsd, demo/), as it recorded in demo/created.
demo-clean:
	@sh contrib/demo.sh clean

# The files installed under $(sysconfdir) are the admin's once installed: install writes each
# only where none is, and uninstall removes each only while it is still what install wrote
# (an xinetd service switched on, a PAM stack with one more module, stay). What install
# writes is staged in build/etc first, with the installation paths substituted, so that
# uninstall compares against the very same bytes.
ETC_FILES = ftpsd.conf pam.d/ftpsd xinetd.d/ftpsd xinetd.d/ftpsd-implicit logrotate.d/ftpsd
# The sources name Debian's paths (PREFIX=/usr); the installed copies name this build's, the
# man pages included (a default build's empty_dir is /usr/local/share/ftpsd/empty).
SUBST_PATHS = sed -e 's|/usr/sbin/ftpsd|$(sbindir)/ftpsd|g' \
	-e 's|/etc/ftpsd.conf|$(sysconfdir)/ftpsd.conf|g' \
	-e 's|/usr/share/ftpsd/|$(datadir)/ftpsd/|g' -e 's|/var/log/ftpsd|$(logdir)|g'
UNITS = ftpsd.socket ftpsd@.service ftpsd-implicit.socket ftpsd-implicit@.service

etc-staged: FORCE | build
	rm -rf build/etc build/units build/man
	mkdir -p build/etc/pam.d build/etc/xinetd.d build/etc/logrotate.d build/units build/man
	sed -e 's|/var/log/ftpsd|$(logdir)|g' contrib/ftpsd.conf.example > build/etc/ftpsd.conf
	cp pam.d/ftpsd build/etc/pam.d/ftpsd
	$(SUBST_PATHS) -e 's|^\(\s*create 0640 root\) adm$$|\1 $(loggroup)|' logrotate.d/ftpsd \
		> build/etc/logrotate.d/ftpsd
	for f in xinetd.d/ftpsd xinetd.d/ftpsd-implicit; do \
		$(SUBST_PATHS) $$f > build/etc/$$f || exit 1; done
	for u in $(UNITS); do $(SUBST_PATHS) systemd/$$u > build/units/$$u || exit 1; done
	for m in ftpsd.8 ftpsd.conf.5; do $(SUBST_PATHS) man/$$m > build/man/$$m || exit 1; done

# Every file and directory gets its mode from here, never from the installer's umask (a
# root shell with umask 077 must not install units systemd's users cannot read); umask 022
# covers the parent directories install -d creates on its way.
install: ftpsd etc-staged
	umask 022 && install -d -m 0755 $(DESTDIR)$(sbindir) $(DESTDIR)$(sysconfdir) \
		$(DESTDIR)$(sysconfdir)/pam.d $(DESTDIR)$(sysconfdir)/xinetd.d \
		$(DESTDIR)$(sysconfdir)/logrotate.d \
		$(DESTDIR)$(mandir)/man8 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(datadir)/ftpsd \
		$(DESTDIR)$(datadir)/ftpsd/empty $(DESTDIR)$(unitdir)
	install -m 0755 ftpsd $(DESTDIR)$(sbindir)/ftpsd
	for f in $(ETC_FILES); do \
		test -e $(DESTDIR)$(sysconfdir)/$$f || \
			install -m 0644 build/etc/$$f $(DESTDIR)$(sysconfdir)/$$f || exit 1; done
	# The accounts pam.d/ftpsd refuses. Debian's other FTP servers ship the same list (and
	# pure-ftpd a longer one): an existing one, edited or another server's, stays.
	install -m 0644 contrib/ftpusers $(DESTDIR)$(datadir)/ftpsd/ftpusers
	test -e $(DESTDIR)$(sysconfdir)/ftpusers || \
		install -m 0644 contrib/ftpusers $(DESTDIR)$(sysconfdir)/ftpusers
	for u in $(UNITS); do install -m 0644 build/units/$$u $(DESTDIR)$(unitdir)/$$u || exit 1; done
	install -m 0644 build/man/ftpsd.8 $(DESTDIR)$(mandir)/man8/ftpsd.8
	install -m 0644 build/man/ftpsd.conf.5 $(DESTDIR)$(mandir)/man5/ftpsd.conf.5
	# The transfer log's directory: root's and writable by no one else (logrotate refuses to
	# rotate in a directory others may write to), readable by loggroup, as the logrotate
	# file's create line. Made only where missing (an admin's owner and mode stay); its group
	# is set by root only (a packager's DESTDIR install as a user leaves that to the package).
	umask 022 && if [ ! -d $(DESTDIR)$(logdir) ]; then \
		install -d -m 0750 $(DESTDIR)$(logdir) && if [ "$$(id -u)" = 0 ]; then \
			chgrp $(loggroup) $(DESTDIR)$(logdir); fi; fi

uninstall: etc-staged
	for f in $(ETC_FILES); do \
		if cmp -s build/etc/$$f $(DESTDIR)$(sysconfdir)/$$f; then \
			rm -f $(DESTDIR)$(sysconfdir)/$$f; \
		elif [ -e $(DESTDIR)$(sysconfdir)/$$f ]; then \
			echo "kept $(DESTDIR)$(sysconfdir)/$$f (changed since install)"; fi; done
	# ftpusers the same way, unless a package (vsftpd and proftpd ship byte for byte the
	# same list) has taken it over since.
	if cmp -s contrib/ftpusers $(DESTDIR)$(sysconfdir)/ftpusers && { [ -n "$(DESTDIR)" ] || \
		! { dpkg-query -S $(sysconfdir)/ftpusers || rpm -qf $(sysconfdir)/ftpusers; } \
		>/dev/null 2>&1; }; then rm -f $(DESTDIR)$(sysconfdir)/ftpusers; fi
	rm -f $(DESTDIR)$(sbindir)/ftpsd $(UNITS:%=$(DESTDIR)$(unitdir)/%) \
		$(DESTDIR)$(datadir)/ftpsd/ftpusers \
		$(DESTDIR)$(mandir)/man8/ftpsd.8 $(DESTDIR)$(mandir)/man5/ftpsd.conf.5
	-rmdir $(DESTDIR)$(datadir)/ftpsd/empty $(DESTDIR)$(datadir)/ftpsd
	# The log directory only while empty: transfer logs stay.
	-rmdir $(DESTDIR)$(logdir)

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build ftpsd

.PHONY: all unit deps check demo demo-clean install uninstall etc-staged format clean FORCE

# --- packaging ---
# make dist     ftpsd-$(VERSION).tar.gz: the files git tracks (as they are in the work tree);
#               in a tree without git (an unpacked tarball), every file but build products.
# make deb      build/deb/ftpsd_$(VERSION)-*.deb: the dist tarball unpacked in build/deb,
#               contrib/debian copied in as debian/, dpkg-buildpackage -b. As root, installs
#               the build dependencies first (tests/lib/install-deps.sh, only what is missing).
# make deb-lint lintian on what make deb built (errors and warnings fail).
# DIST_UNTRACKED=yes adds the untracked files git does not ignore (the test suite builds the
# work tree as it is; a release tarball has tracked files only).
DIST     = ftpsd-$(VERSION)
DIST_UNTRACKED ?= no
DEB_DIR ?= build/deb
DEB_DEPS = gcc make libc6-dev libssl-dev libpam0g-dev libcap-ng-dev libseccomp-dev \
	dpkg-dev debhelper lintian

dist:
	@rm -rf build/dist && mkdir -p build/dist/$(DIST)
	@if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then \
		git ls-files -z $(if $(filter yes,$(DIST_UNTRACKED)),--cached --others --exclude-standard) | \
		xargs -0 sh -c \
			'for f; do if [ -e "$$f" ] || [ -L "$$f" ]; then printf "%s\0" "$$f"; fi; done' sh \
			> build/dist/files; \
		git log -1 --format=%ct > build/dist/mtime 2>/dev/null || date +%s > build/dist/mtime; \
	else \
		find . \( -path ./.git -o -path ./build -o -path ./debian -o -path ./demo \
			-o -path ./tests/.work -o -name __pycache__ \) -prune -o \
			\( -type f -o -type l \) ! -path ./ftpsd ! -name '*.tar.gz' ! -name '*.o' \
			! -name '*.d' -printf '%P\0' > build/dist/files; \
		date +%s > build/dist/mtime; \
	fi
	@tar -cf - --null -T build/dist/files | tar -xf - -C build/dist/$(DIST)
	@tar -C build/dist --sort=name --owner=0 --group=0 --numeric-owner --mode=go-w \
		--mtime=@$$(cat build/dist/mtime) -cf - $(DIST) | gzip -9n > $(DIST).tar.gz
	@rm -rf build/dist
	@echo "  DIST    $(DIST).tar.gz"

# MAKEFLAGS and friends are dropped: variables given to this make (PREFIX=...) must not reach
# the package build, whose paths debian/rules sets.
deb: dist
	@sh tests/lib/install-deps.sh $(DEB_DEPS)
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)
	tar -xzf $(DIST).tar.gz -C $(DEB_DIR)
	rm -rf $(DEB_DIR)/$(DIST)/debian && cp -R contrib/debian $(DEB_DIR)/$(DIST)/debian
	cd $(DEB_DIR)/$(DIST) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
		dpkg-buildpackage -us -uc -b -Jauto
	rm -rf $(DEB_DIR)/$(DIST)
	@ls -1 $(DEB_DIR)/*.deb

deb-lint:
	lintian --fail-on error,warning $(DEB_DIR)/ftpsd_*.changes

clean: clean-dist
clean-dist:
	rm -f $(DIST).tar.gz

.PHONY: dist deb deb-lint clean-dist

# --- fuzzing ---
# make fuzz         builds the libFuzzer harnesses tests/fuzz/fuzz_*.c (clang,
#                   -fsanitize=fuzzer,address,undefined, against every src/*.c but main.c) into
#                   build/fuzz/ and runs each for FUZZ_SECONDS (default 60) with -max_len=4096 on
#                   build/fuzz/corpus/<target>, a copy of tests/fuzz/corpus/<target> that grows
#                   from run to run. Prints the executions per target; fails on any crash, leak,
#                   undefined behaviour, broken invariant or timeout (input saved in
#                   build/fuzz/artifacts/<target>/, report in build/fuzz/logs/<target>.log).
# make fuzz-smoke   the saved reproducers, then the same for FUZZ_SMOKE_SECONDS (default 10) per
#                   target on a fresh copy of the seeds (run by make check); skips with a reason when clang cannot be had (not root).
# make fuzz-regress runs the saved reproducers in tests/fuzz/crashes/<target>/ once each.
# As root, clang and libclang-rt-NN-dev are installed first when missing (tests/fuzz/run.sh).
# The -D flags are ALL_CPPFLAGS; _FORTIFY_SOURCE is undone because the fortified libc calls
# (__memcpy_chk, __read_chk, ...) bypass ASan's checks.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS = $(FUZZ_TARGETS:%=build/fuzz/%)
FUZZ_OBJS = $(patsubst src/%.c,build/fuzz/obj/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# Warnings in src/ are the gcc build's business (make all, -Werror); the harnesses get their own.
FUZZ_WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
FUZZ_CPPFLAGS = $(ALL_CPPFLAGS) -U_FORTIFY_SOURCE
FUZZ_RUN = FUZZ_CC='$(FUZZ_CC)' sh tests/fuzz/run.sh

build/fuzz/obj/%.o: src/%.c
	@mkdir -p build/fuzz/obj
	@$(if $(V),,echo "  CC      $< (fuzz)")
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -w -fsanitize=fuzzer-no-link,address,undefined \
		-MMD -MP -c -o $@ $<
build/fuzz/obj/config.o: build/paths.stamp
-include $(FUZZ_OBJS:.o=.d)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS)
	@$(if $(V),,echo "  CCLD    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) -Isrc $(FUZZ_CFLAGS) $(FUZZ_WARN) \
		-fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJS) $(LIBS)

# The objects are named here so that make keeps them (they are not intermediate files).
fuzz-build: $(FUZZ_OBJS) $(FUZZ_BINS)

fuzz:
	@$(FUZZ_RUN) toolchain
	@$(MAKE) --no-print-directory fuzz-build
	@$(FUZZ_RUN) run $(FUZZ_SECONDS) keep $(FUZZ_TARGETS)

fuzz-smoke:
	@rc=0; $(FUZZ_RUN) toolchain || rc=$$?; \
	if [ $$rc = 2 ]; then echo "fuzz-smoke: skipped (no clang with libFuzzer, not root)"; \
	elif [ $$rc != 0 ]; then exit 1; \
	else $(MAKE) --no-print-directory fuzz-build && $(FUZZ_RUN) regress $(FUZZ_TARGETS) && \
		$(FUZZ_RUN) run $(FUZZ_SMOKE_SECONDS) fresh $(FUZZ_TARGETS); fi

fuzz-regress:
	@$(FUZZ_RUN) toolchain
	@$(MAKE) --no-print-directory fuzz-build
	@$(FUZZ_RUN) regress $(FUZZ_TARGETS)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-regress

# --- sanitizers ---
# make check-asan   ftpsd built by clang with -fsanitize=address,undefined into build/asan/ftpsd
#                   (objects in build/asan/; the normal build is not touched), the unit tests the
#                   same way (build/asan/tests/, run with LeakSanitizer), then the whole
#                   integration suite against build/asan/ftpsd (FTPSD_TEST_BINARY; seccomp stays
#                   on). Every ftpsd process logs to build/asan/logs/asan.PID (the fixture hands
#                   ASAN_OPTIONS etc. on: FTPSD_TEST_ENV); fails if the suite fails or if any log
#                   holds anything (tests/sanitizers/check_logs.py, which symbolizes the stacks).
#                   How the reports get out of chroot and seccomp, and where LeakSanitizer runs:
#                   tests/sanitizers/sandbox_hooks.c, linked into build/asan/ftpsd only (--wrap).
#                   ASAN_PYTEST adds pytest arguments (-x, or tests/integration/test_x.py).
# As root, clang and its runtime are installed first when missing (tests/sanitizers/toolchain.sh).
ASAN_CC ?= clang
ASAN_PYTEST ?=
ASAN_LOGS = $(CURDIR)/build/asan/logs
# WARN and -Werror as for gcc; clang does not know -Wno-format-truncation and warns about the
# missing fields of libseccomp's own SCMP_A*() initializers.
ASAN_CFLAGS = -std=gnu11 $(WARN) -Wno-unknown-warning-option -Wno-missing-field-initializers \
	$(HARDEN) -fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g
# The fortified libc calls (__memcpy_chk, ...) bypass ASan's checks.
ASAN_CPPFLAGS = $(ALL_CPPFLAGS) -U_FORTIFY_SOURCE
ASAN_OBJS = $(SRCS:src/%.c=build/asan/%.o)
ASAN_UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=build/asan/tests/%)
# symbolize=0: a chrooted, filtered process cannot start llvm-symbolizer (check_logs.py does).
# detect_leaks=1 takes effect in the monitor and in ftpsd -t; sandbox_hooks.c turns it off in the
# sandboxed processes (ptrace is impossible there), which leave by _exit() but for the front.
# color=never: deciding on colours costs an ioctl on the log, which the filters forbid.
# (The runtimes separate options by ':' or by blanks alike.)
SAN_COMMON = log_path=$(ASAN_LOGS)/asan:symbolize=0:color=never
ASAN_RUN_OPTIONS = $(SAN_COMMON):detect_leaks=1:halt_on_error=1:handle_abort=1
ASAN_RUN_OPTIONS += detect_stack_use_after_return=1:strict_string_checks=1
UBSAN_RUN_OPTIONS = $(SAN_COMMON):halt_on_error=1:print_stacktrace=1
LSAN_RUN_OPTIONS = $(SAN_COMMON):suppressions=$(CURDIR)/tests/sanitizers/lsan.supp
# libcrypt loaded at start: the runtime resolves its crypt_r interceptor's target then, and
# pam_unix (dlopened at login, test_real_account.py) would otherwise call through a NULL one.
ASAN_LIBS = -Wl,--push-state,--no-as-needed -lcrypt -Wl,--pop-state
ASAN_WRAP = -Wl,--wrap=drop_privileges,--wrap=fork,--wrap=waitpid \
	-Wl,--wrap=seccomp_load \
	-Wl,--wrap=config_defaults,--wrap=config_load,--wrap=config_override

asan-toolchain:
	@ASAN_CC='$(ASAN_CC)' sh tests/sanitizers/toolchain.sh

build/asan/%.o: src/%.c | asan-toolchain
	@mkdir -p build/asan
	@$(if $(V),,echo "  CC      $< (asan)")
	$(Q)$(ASAN_CC) $(ASAN_CPPFLAGS) $(ASAN_CFLAGS) -MMD -MP -c -o $@ $<
build/asan/config.o build/asan/main.o: build/paths.stamp
-include $(ASAN_OBJS:.o=.d)

build/asan/sandbox_hooks.o: tests/sanitizers/sandbox_hooks.c src/drop.h src/config.h Makefile \
		| asan-toolchain
	@mkdir -p build/asan
	@$(if $(V),,echo "  CC      $< (asan)")
	$(Q)$(ASAN_CC) $(ASAN_CPPFLAGS) -Isrc $(ASAN_CFLAGS) \
		-DFTPSD_ASAN_OPTIONS='"$(ASAN_RUN_OPTIONS)"' -DFTPSD_UBSAN_OPTIONS='"$(UBSAN_RUN_OPTIONS)"' \
		-DFTPSD_LSAN_OPTIONS='"$(LSAN_RUN_OPTIONS)"' -c -o $@ $<

build/asan/ftpsd: $(ASAN_OBJS) build/asan/sandbox_hooks.o
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) $(ALL_LDFLAGS) $(ASAN_WRAP) -o $@ $^ $(LIBS) $(ASAN_LIBS)

# The same binary with faults injected on purpose, for tests/sanitizers/test_plumbing.py.
SELFTEST_WRAP = -Wl,--wrap=monitor_run,--wrap=front_main,--wrap=session_main \
	-Wl,--wrap=worker_main,--wrap=msg_recv
build/asan/selftest_faults.o: tests/sanitizers/selftest_faults.c | asan-toolchain
	@mkdir -p build/asan
	@$(if $(V),,echo "  CC      $< (asan)")
	$(Q)$(ASAN_CC) $(ASAN_CPPFLAGS) -Isrc $(ASAN_CFLAGS) -MMD -MP -c -o $@ $<
-include build/asan/selftest_faults.d

build/asan/ftpsd-selftest: $(ASAN_OBJS) build/asan/sandbox_hooks.o build/asan/selftest_faults.o
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(ASAN_CC) $(ASAN_CFLAGS) $(ALL_LDFLAGS) $(ASAN_WRAP) $(SELFTEST_WRAP) -o $@ $^ $(LIBS) \
		$(ASAN_LIBS)

build/asan/tests/%: tests/unit/%.c $(filter-out build/asan/main.o,$(ASAN_OBJS)) tests/unit/unit.h
	@mkdir -p build/asan/tests
	@$(if $(V),,echo "  CC      $< (asan)")
	$(Q)$(ASAN_CC) $(ASAN_CPPFLAGS) $(ASAN_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ $< \
		$(filter-out build/asan/main.o,$(ASAN_OBJS)) $(LIBS)

# pam_wrapper and nss_wrapper dlopen with RTLD_DEEPBIND unless told not to, which the sanitizer
# runtime refuses (it aborts the monitor); their variable for it is UID_WRAPPER_DISABLE_DEEPBIND.
ASAN_ENV = FTPSD_TEST_BINARY=$(CURDIR)/build/asan/ftpsd \
	FTPSD_TEST_ENV="ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS UID_WRAPPER_DISABLE_DEEPBIND \
		NSS_WRAPPER_DISABLE_DEEPBIND" \
	ASAN_OPTIONS='$(ASAN_RUN_OPTIONS)' UBSAN_OPTIONS='$(UBSAN_RUN_OPTIONS)' \
	LSAN_OPTIONS='$(LSAN_RUN_OPTIONS)' UID_WRAPPER_DISABLE_DEEPBIND=1 NSS_WRAPPER_DISABLE_DEEPBIND=1

check-asan: deps all $(UNIT_BINS) build/ftpsd-testhooks build/asan/ftpsd build/asan/ftpsd-selftest \
		$(ASAN_UNIT_BINS)
	@set -e; for t in $(ASAN_UNIT_BINS); do \
		ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ./$$t; done
	@$(ASAN_ENV) ./tests/run-integration.sh -q tests/sanitizers/test_plumbing.py
	@rm -rf $(ASAN_LOGS) && mkdir -p $(ASAN_LOGS) && chmod 1777 $(ASAN_LOGS)
	@rc=0; $(ASAN_ENV) ./tests/run-integration.sh $(ASAN_PYTEST) || rc=$$?; \
	/usr/bin/python3 tests/sanitizers/check_logs.py $(ASAN_LOGS) || rc=1; exit $$rc

.PHONY: asan-toolchain check-asan

# --- benchmarks ---
# make bench        ftpsd against vsftpd, ProFTPD and Pure-FTPd (unpacked from Debian packages
#                   into bench/.work, run per connection under systemd-socket-activate with one
#                   certificate and one throwaway PAM account), a TLS ceiling (bench/tlspump.c,
#                   openssl s_server) and OpenSSH SFTP: throughput, CPU per GiB, session cost,
#                   memory per idle session. As root. Tables on stdout and in bench/results.md.
# make bench BENCH_QUICK=1   100 MiB file, 50 sessions, 50 idle sessions (a few minutes).
# make bench-profile         perf and strace of each server's data path and session set-up.
# make bench-sizes           PROT P block size and write buffering (bench/sizes.md).
# See bench/README.md.
BENCH_QUICK ?=

bench: all
	@sh bench/setup.sh
	@BENCH_QUICK='$(BENCH_QUICK)' python3 bench/bench.py

bench-profile: all
	@sh bench/setup.sh
	@python3 bench/bench.py --profile

bench-sizes: all
	@sh bench/setup.sh
	@python3 bench/bench.py --sizes

.PHONY: bench bench-profile bench-sizes
