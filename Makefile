# parallelviz: `make demo` renders the main scene, `make test` runs the tests; both set themselves up.
VENV ?= .venv
PY := $(VENV)/bin/python
MANIM := $(VENV)/bin/manim
QUALITY ?= h
SCENE_FILES := $(wildcard scenes/*.py)

.PHONY: setup demo test all-scenes posters bench clean

setup:
	@tools/bootstrap.sh

demo: setup
	$(MANIM) -q$(QUALITY) scenes/dp_tp.py DataParallel

test: setup
	$(PY) -m pytest -q

# Every scene class in every file under scenes/, at QUALITY (l, m, h, p, k; default h).
all-scenes: setup
	@set -e; for f in $(SCENE_FILES); do \
	  for s in $$($(PY) -m parallelviz.scenes_in $$f); do \
	    echo "== $$f $$s"; $(MANIM) -q$(QUALITY) $$f $$s; \
	  done; \
	done

# Poster PNGs for the README: the last frame of each scene, small.
posters: setup
	$(PY) tools/posters.py

bench: setup
	$(PY) tools/bench.py

clean:
	rm -rf media/videos media/images media/Tex media/texts
