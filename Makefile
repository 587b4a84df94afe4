# bulkops: two commands for a fresh machine with Python 3.11 or newer.
#   make run   set up and start the web app and a Celery worker on http://127.0.0.1:$(PORT)
#   make test  install test dependencies and run the whole suite
# The venv is made with PYTHON when given, else with the newest of python3.13, python3.12,
# python3.11 and python3 on PATH that is 3.11 or newer (scripts/find-python).

PYTHON ?=
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
export PORT

.PHONY: run test lint install install-test clean

$(BIN)/python:
	@python=$$(scripts/find-python $(PYTHON)) && \
	  echo "$$python -m venv $(VENV)" && "$$python" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# make run starts the Procfile's processes and one more, first_steps, which prints the
# first steps (the demo login among them) in a box after their banners, then waits to
# be stopped with them.
run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(BIN)/python manage.py generate_fhir --patients 100 --if-empty
	$(BIN)/python manage.py seed_demo --url http://127.0.0.1:$(PORT) --later
	{ cat Procfile; echo "first_steps: exec python manage.py first_steps --url http://127.0.0.1:$(PORT)"; } \
	  > $(VENV)/Procfile.run
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --procfile $(VENV)/Procfile.run \
	  --app-root $(CURDIR) --port $(PORT)

test: install-test
	$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 1
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# pytest exits 5 when it collected nothing: for bulkops that is a failure.
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	  exit $$rc

lint: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
