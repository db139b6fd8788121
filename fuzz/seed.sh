#!/bin/sh
# Fills the seed corpus of the spec_parse target from the project's specs.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/spec_parse
for f in ../examples/*.yaml ../tests/specs/invalid/*.yaml ../tests/specs/invalid/*.json; do
    cp "$f" "corpus/spec_parse/$(basename "$f")"
done
