#!/bin/sh
# check_cxx_header.sh SOURCE_DIR BUILD_DIR — include/dagnet.h compiles as C++11 and C++17 with
# g++ -Wall -Wextra -pedantic -Werror (tests/cxx/header.cpp), and the object refers to the
# API by its C names (extern "C"), not mangled ones. Exit 77 (skipped) without g++.
set -eu
src=$1
out=$2/header_cxx
command -v g++ >/dev/null 2>&1 || { echo "g++ not found: skipped"; exit 77; }
mkdir -p "$out"
for std in c++11 c++17; do
  g++ -std=$std -Wall -Wextra -pedantic -Werror -I"$src/include" -c "$src/tests/cxx/header.cpp" \
    -o "$out/header_$std.o"
done
undefined=$(nm -u "$out/header_c++11.o")
for name in dn_session_new dn_model_load dn_trainer_new dn_version; do
  echo "$undefined" | grep -qx " *U $name" || {
    echo "header.cpp does not refer to the C name $name:"; echo "$undefined"; exit 1; }
done
echo "dagnet.h: C++11 and C++17 clean, C linkage"
