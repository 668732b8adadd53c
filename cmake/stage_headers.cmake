# Stages the public headers as they are installed, under OUT_DIR
# (<build>/include/gfs; installed as <prefix>/include/gfs). Run by the
# gfs_public_headers target:
#   cmake -DSOURCE_DIR=<tree> -DOUT_DIR=<dir> -DHEADERS=a.h,b/c.h -DSTAMP=<file>
#         -P stage_headers.cmake
#
# In the tree a header names another as "common/status.h" (the source root
# is on the include path); staged, that include becomes
# <gfs/common/status.h>, so a program needs only <prefix>/include on its
# path and no folder of this project lands at the top of its include names.
# A public header may include only public headers: anything else is an
# error here, not a broken package later.
cmake_minimum_required(VERSION 3.25)
string(REPLACE "," ";" headers "${HEADERS}")
foreach(h IN LISTS headers)
  file(READ "${SOURCE_DIR}/${h}" text)
  string(REGEX MATCHALL "#include \"[^\"]+\"" includes "${text}")
  foreach(inc IN LISTS includes)
    string(REGEX REPLACE "#include \"([^\"]+)\"" "\\1" path "${inc}")
    if(NOT path IN_LIST headers)
      message(FATAL_ERROR "${h} is a public header but includes \"${path}\", which is not one")
    endif()
  endforeach()
  string(REGEX REPLACE "#include \"([^\"]+)\"" "#include <gfs/\\1>" text "${text}")
  set(out "${OUT_DIR}/${h}")
  set(old "")
  if(EXISTS "${out}")
    file(READ "${out}" old)
  endif()
  if(NOT "${old}" STREQUAL "${text}")
    file(WRITE "${out}" "${text}")
  endif()
endforeach()

# The two entry points: <gfs/gfs.h> (embedding) and <gfs/client.h> (the
# client library alone).
set(entry_gfs "// gfs-mpi, embedding: gfs::Init splits an MPI job into the storage roles and
// application ranks, each with a gfs::Client (gfs/jobs/gfs.h). Link gfs::gfs_client.
#pragma once

#include <gfs/jobs/gfs.h>
")
set(entry_client "// gfs-mpi, the client library alone: gfs::Client and the record format
// (gfs/io/client.h, gfs/io/record.h), no storage roles. Link gfs::gfs_io.
#pragma once

#include <gfs/io/client.h>
#include <gfs/io/record.h>
")
foreach(entry gfs client)
  set(out "${OUT_DIR}/${entry}.h")
  set(old "")
  if(EXISTS "${out}")
    file(READ "${out}" old)
  endif()
  if(NOT "${old}" STREQUAL "${entry_${entry}}")
    file(WRITE "${out}" "${entry_${entry}}")
  endif()
endforeach()
file(TOUCH "${STAMP}")
