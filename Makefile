# sevref: every task is a make target; CI only calls make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PEERS := .peers
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev peers apt-lists browser libvirt hsm faketime packages demo serve test test-fast lint bench vectors golden conformance check-site screenshots fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## dev: create .venv with sevref (editable) and the development tools
dev: $(VENV)/.installed

# The peers of the differential tests, each in its own folder: both versions
# are the Python package "sevsnpmeasure", so they cannot share an environment.
$(PEERS)/%/.installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --no-deps --target $(PEERS)/$* sev-snp-measure==$*
	touch $@

## peers: install sev-snp-measure 0.0.9 (legacy VMSA) and 0.0.13 (KVM_SEV_INIT2) for the tests
peers: $(PEERS)/0.0.9/.installed $(PEERS)/0.0.13/.installed

## apt-lists: make sure apt knows the Debian packages the firmware comes from
# apt may keep its package lists compressed (Acquire::GzipIndexes, or lz4 as
# Debian's images do): any *_Packages, plain or compressed, will do.
apt-lists:
	@ls /var/lib/apt/lists/ 2>/dev/null | grep -Eq '_Packages(\.(gz|xz|lz4|zst|bz2|lzma))?$$' || $(SUDO) apt-get update

# The site's tests drive Debian's Chromium with Playwright; Playwright never
# downloads a browser of its own.
CHROMIUM := /usr/bin/chromium

## browser: install Debian's chromium for the site's browser tests
browser: apt-lists
	@test -x $(CHROMIUM) || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium fonts-dejavu-core

# The export tests run libvirt's own validator as Debian 12 ships it, with
# Debian's python3. The package does not declare two of the tool's imports
# (lxml, cryptography), so they are named here.
VALIDATOR := /usr/bin/virt-qemu-sev-validate

## libvirt: install Debian's virt-qemu-sev-validate (libvirt-clients-qemu) for the export tests
libvirt: apt-lists
	@test -x $(VALIDATOR) && /usr/bin/python3 -c 'import libvirt, lxml, cryptography' 2>/dev/null || \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
		libvirt-clients-qemu python3-lxml python3-cryptography

# The PKCS#11 tests sign with keys in a SoftHSM2 token made in a temporary
# folder; pkcs11-tool (OpenSC) makes the keys and openssl checks the signatures.
SOFTHSM := /usr/lib/softhsm/libsofthsm2.so

## faketime: install Debian's faketime, which moves the clock for the test that make demo never expires
faketime: apt-lists
	@test -x /usr/bin/faketime || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends faketime

## hsm: install Debian's SoftHSM2, OpenSC's pkcs11-tool and openssl for the PKCS#11 signing tests
hsm: apt-lists
	@test -e $(SOFTHSM) && test -x /usr/bin/softhsm2-util && test -x /usr/bin/pkcs11-tool && test -x /usr/bin/openssl || \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends softhsm2 opensc openssl

# The source tests build real packages: RPMs with Debian's rpmbuild (zstd, xz and
# gzip payloads) and repositories with createrepo_c; .debs with dpkg-deb (dpkg, whose
# -Zzstd needs no other package).
## packages: install Debian's rpm (rpmbuild) and createrepo-c for the RPM source tests
packages: apt-lists
	@test -x /usr/bin/rpmbuild && test -x /usr/bin/createrepo_c && test -x /usr/bin/dpkg-deb || \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends rpm createrepo-c dpkg

.PHONY: man shells

# The man pages are made from sevref's own parsers (sevref/_cli/_manpage.py) and committed in man/, so that
# a wheel can be built without sevref's dependencies; tests/test_packaging.py fails when they drift.
## man: regenerate man/ (sevref.1 and one sevref-COMMAND.1 a command) from the parsers
man: dev
	$(BIN)/python -m sevref._cli._manpage --changelog CHANGELOG.md --out man

# The completion tests load sevref completion's scripts into the real shells, and the packaging tests
# render the installed man pages with man -l (man-db; col from bsdextrautils).
## shells: install Debian's zsh, fish and man-db for the completion and man page tests
shells: apt-lists
	@test -x /usr/bin/zsh && test -x /usr/bin/fish && test -x /usr/bin/man && test -x /usr/bin/col || \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends zsh fish man-db bsdextrautils

# The demo's signing key: made on first use, clearly labelled, and its
# passphrase is no secret. Real publishers keep their key and passphrase safe.
DEMO_OUT ?= site
# Where downloaded packages and the private apt lists of other suites go (make demo DEMO_CACHE=DIR: an empty DIR times a fresh clone).
DEMO_CACHE ?= .cache
DEMO_KEYS ?= $(DEMO_CACHE)/demo-key
DEMO_KEY := $(DEMO_KEYS)/sevref-DEMO
DEMO_ENV := SEVREF_KEY_PASSPHRASE=demo-key-passphrase-not-a-secret
# The demo is issued when make demo runs (and valid for 180 days from then), so a
# fresh clone's make demo works however long after the last commit. Set
# SOURCE_DATE_EPOCH to issue it at a fixed time instead (reproducible builds).
DEMO_ISSUED := $(if $(SOURCE_DATE_EPOCH),,--issued now)
# Each demo is a new release of the stream, numbered by its issue time, so a verifier's state that saw
# the last one (sevref verify --state) takes the next: a publisher never reissues a serial.
DEMO_SERIAL := --serial $(if $(SOURCE_DATE_EPOCH),$(SOURCE_DATE_EPOCH),$$(date +%s))
DEMO_STATE ?= $(DEMO_KEYS)/verifier-state.json
# A demo built over an earlier one made with the same demo key is that release's successor: it names it
# (--previous, verified against the demo's key chain) and says what changed (changes.html), so the verifier's
# state sees an unbroken history. Over anything else (no site yet, or one of a demo key since deleted with
# .cache) it starts afresh. The demo's manifests may drop entries as they are edited (--allow-removal); a
# real stream deprecates or revokes them first. Not with SOURCE_DATE_EPOCH: a reproducible build depends on
# nothing but its inputs.
DEMO_PREVIOUS = $(if $(SOURCE_DATE_EPOCH),,$(if $(shell cmp -s $(DEMO_OUT)/keys/1.dsse.json \
	$(DEMO_KEYS)/chain/1.dsse.json && echo same),--previous $(DEMO_OUT) --allow-removal))

## demo: build and sign the bundled example publication (manifests/) into site/, then verify it
demo: dev apt-lists
	@test -f $(DEMO_KEY).pem || $(DEMO_ENV) $(BIN)/sevref key generate --out $(DEMO_KEY)
	@test -f $(DEMO_KEYS)/chain/1.dsse.json || $(DEMO_ENV) $(BIN)/sevref key chain --keys $(DEMO_KEYS)/chain \
		--publisher example-cvm --signing-key $(DEMO_KEY).pem --label "DEMO KEY made by make demo: do not trust"
	$(DEMO_ENV) $(BIN)/sevref build manifests/*.yaml --out $(DEMO_OUT) --cache $(DEMO_CACHE) $(DEMO_ISSUED) $(DEMO_SERIAL) \
		--signing-key $(DEMO_KEY).pem --keys $(DEMO_KEYS)/chain $(DEMO_PREVIOUS)
	$(BIN)/sevref verify --publication $(DEMO_OUT) --trusted-key $(DEMO_KEY).pub --publisher example-cvm --product debian-ovmf --stream debian \
		--state $(DEMO_STATE)

## serve: serve site/ on http://127.0.0.1:8000/ to browse it
serve:
	@test -f site/index.html || { echo "no site/: run make demo first" >&2; exit 1; }
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory site 8000

## bench: every figure with its ratio to its reference and its goal (BENCH_ARGS=--quick: one digest, the command line, the batch)
BENCH_ARGS ?=
bench: dev peers apt-lists
	$(BIN)/python -m tests.bench.bench $(BENCH_ARGS)

## vectors: regenerate tests/vectors/known-answers.jsonl with sev-snp-measure 0.0.9 and 0.0.13 (deterministic)
vectors: dev peers apt-lists
	$(BIN)/python -m tests.vectors.make_vectors

# The golden publication is signed with a committed test key, so that its
# envelopes and signatures are checked byte for byte too.
GOLDEN_ENV := SEVREF_KEY_PASSPHRASE=golden-test-key-not-a-secret

## fuzz: coverage-guided fuzzing (atheris) of every parser of untrusted input, 2 minutes a target
fuzz: dev
	$(BIN)/python -m tests.fuzz --seconds 120 --min-execs 100000

## golden: regenerate tests/golden/ after an intended change to the output format
golden: dev
	$(BIN)/python -m tests.golden.make_inputs
	rm -rf tests/golden/publication
	$(GOLDEN_ENV) $(BIN)/sevref build tests/golden/manifest.yaml --out tests/golden/publication --cache .cache \
		--signing-key tests/golden/key/golden.pem --keys tests/golden/key/chain

## conformance: regenerate tests/conformance/ (frozen verifier cases; only after a format change)
conformance: dev
	$(BIN)/python -m tests.conformance.make_cases

## check-site: regenerate the golden publication and fail if it differs from the committed one
check-site: golden
	git diff --exit-code -- tests/golden
	@test -z "$$(git status --porcelain -- tests/golden)" || { git status --short -- tests/golden; exit 1; }

## screenshots: regenerate docs/*.png (the README's pictures) from the demo site
screenshots: demo browser
	$(BIN)/python -m tests.browser site docs

# The tests run on every core (pytest-xdist). Each test process, and each sevref it starts, reads
# compiled bytecode from .cache/pycache rather than compiling every module again (even where the
# environment sets PYTHONDONTWRITEBYTECODE); nothing is written beside the sources.
TEST_ENV := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/.cache/pycache
TEST_ARGS ?= -n auto --dist worksteal

## test: run every test; missing prerequisites that this Makefile installs are failures, not skips
test: dev peers apt-lists browser libvirt hsm faketime packages shells
	SEVREF_STRICT=1 $(TEST_ENV) $(BIN)/python -m pytest $(TEST_ARGS)

## test-fast: everything but the slow, browser and peer tests (under a minute; make test runs them all)
test-fast: dev
	$(TEST_ENV) $(BIN)/python -m pytest $(TEST_ARGS) -m "not slow and not browser and not peers"

## lint: formatting, lint, strict typing, docstring coverage, security lint
lint: dev
	$(BIN)/ruff format --check sevref tests
	$(BIN)/ruff check sevref tests
	$(BIN)/mypy
	$(BIN)/interrogate sevref
	$(BIN)/bandit --quiet -c pyproject.toml -r sevref

clean:
	rm -rf $(VENV) $(PEERS) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
