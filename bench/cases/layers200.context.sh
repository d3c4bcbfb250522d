#!/bin/sh
# Context of layers200 (cwd = the context folder).
mkdir -p app && echo "stamp v0" > app/stamp.txt
