#!/usr/bin/env python3
"""Fails when an #include crosses a layer the wrong way.

The layers, bottom up (doc/architecture.md, "Layers"):

    common/                                       0
    mpi/transport/                                1
    mpi/protocol/                                 2
    master/   chunk/   io/ (client, io/h5/)       3  siblings: none includes another
    jobs/                                         4
    io/tool/ (the gfs tool)   bench/              5  leaves: nothing else includes them
    tests/                                        6

A file may include a file of its own layer or of a lower one; never one of a
higher layer, nor one of a sibling at the same height. Every .cc/.h file under
those folders must belong to a layer (a new folder is placed here first), and
every quoted include must name a file of the tree, from its root. Headers of
the tree are included with quotes ("common/status.h"); the installed form
<gfs/...> belongs only to tests/install/, which builds against an installed
package.

    tests/check_layers.py SOURCE_DIR      check the tree (exit 1 on a crossing)
    tests/check_layers.py --self-test     check that each kind of crossing is caught
"""

import os
import re
import sys
import tempfile

# (folder, layer, height); the longest matching folder decides.
LAYERS = [
    ("common/", "common", 0),
    ("mpi/transport/", "transport", 1),
    ("mpi/protocol/", "protocol", 2),
    ("master/", "master", 3),
    ("chunk/", "chunk", 3),
    ("io/", "client", 3),
    ("jobs/", "jobs", 4),
    ("io/tool/", "tool", 5),
    ("bench/", "bench", 5),
    ("tests/", "tests", 6),
]
TOP_FOLDERS = sorted({folder.split("/")[0] for folder, _, _ in LAYERS})
QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
ANGLED = re.compile(r"^\s*#\s*include\s+<([^>]+)>")


def layer_of(path):
    best = None
    for folder, name, height in LAYERS:
        if path.startswith(folder) and (best is None or len(folder) > len(best[0])):
            best = (folder, name, height)
    return best


def sources(root):
    for top in TOP_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for f in sorted(filenames):
                if f.endswith((".cc", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def check(root):
    """Returns one line per problem found in the tree at `root`."""
    problems = []
    for path in sources(root):
        mine = layer_of(path)
        if mine is None:
            problems.append(f"{path}: in no layer (add its folder to tests/check_layers.py)")
            continue
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        for number, line in enumerate(lines, 1):
            where = f"{path}:{number}"
            angled = ANGLED.match(line)
            if angled:
                target = angled.group(1)
                top = target.split("/")[0]
                if top == "gfs" and not path.startswith("tests/install/"):
                    problems.append(f"{where}: <{target}> is the installed form; "
                                    "the tree includes its headers with quotes")
                elif top in TOP_FOLDERS and "/" in target:
                    problems.append(f"{where}: <{target}>: the tree's headers are "
                                    "included with quotes")
                continue
            quoted = QUOTED.match(line)
            if not quoted:
                continue
            target = quoted.group(1)
            if not os.path.isfile(os.path.join(root, target)):
                problems.append(f'{where}: "{target}" is no file of the tree '
                                "(includes are named from the source root)")
                continue
            theirs = layer_of(target)
            if theirs is None:
                problems.append(f'{where}: "{target}" is in no layer')
            elif theirs[1] == mine[1]:
                continue
            elif theirs[2] > mine[2]:
                problems.append(f'{where}: "{target}" is in layer {theirs[1]}, above '
                                f"{mine[1]}: a lower layer includes a higher one")
            elif theirs[2] == mine[2]:
                problems.append(f'{where}: "{target}" is in layer {theirs[1]}, a sibling '
                                f"of {mine[1]}: siblings never include each other")
    return problems


def self_test():
    """Builds a small tree with one crossing of each kind and checks that
    exactly those are reported."""
    files = {
        "common/status.h": "",
        "mpi/transport/transport.h": '#include "common/status.h"\n',
        "mpi/protocol/wire.h": '#include "mpi/transport/transport.h"\n',
        "master/master_server.h": '#include "mpi/protocol/wire.h"\n',
        "chunk/chunk_server.h": '#include "mpi/protocol/wire.h"\n',
        "io/client.h": '#include "mpi/protocol/wire.h"\n#include "io/client.h"\n',
        "io/h5/vfd.h": '#include "io/client.h"\n',
        "jobs/gfs.h": '#include "io/client.h"\n#include "master/master_server.h"\n',
        "io/tool/main.cc": '#include "jobs/gfs.h"\n#include "bench/stream.h"\n',
        "bench/stream.h": '#include "io/client.h"\n',
        "tests/unit/a_test.cc": '#include "io/tool/main.cc"\n#include "bench/stream.h"\n',
        "tests/install/main.cc": "#include <gfs/gfs.h>\n",
        # The crossings, one of each kind:
        "mpi/protocol/up.h": '#include "master/master_server.h"\n',
        "master/sibling.cc": '#include "chunk/chunk_server.h"\n',
        "io/roles.cc": '#include "jobs/gfs.h"\n',
        "jobs/leaf.cc": '#include "io/tool/main.cc"\n',
        "bench/test_header.cc": '#include "tests/unit/a_test.cc"\n',
        "common/missing.cc": '#include "status.h"\n',
        "chunk/angled.cc": "#include <common/status.h>\n#include <gfs/gfs.h>\n",
        "mpi/loose.h": "",
        "doc_is_no_layer/x.cc": "",
    }
    want = {
        "mpi/protocol/up.h:1", "master/sibling.cc:1", "io/roles.cc:1", "jobs/leaf.cc:1",
        "bench/test_header.cc:1", "common/missing.cc:1", "chunk/angled.cc:1",
        "chunk/angled.cc:2", "io/tool/main.cc:2", "mpi/loose.h",
    }
    with tempfile.TemporaryDirectory() as root:
        for path, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w", encoding="utf-8") as f:
                f.write(text)
        problems = check(root)
    got = {p.split(": ")[0] for p in problems}
    # doc_is_no_layer/ is outside the layered folders: not scanned at all.
    ok = got == want
    for p in problems:
        print(("  found: " if p.split(": ")[0] in want else "  UNEXPECTED: ") + p)
    for missing in sorted(want - got):
        print("  MISSED: " + missing)
    print("self-test: " + ("every crossing caught" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[1])
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers: {len(problems)} include(s) cross a layer the wrong way "
              "(doc/architecture.md, Layers)", file=sys.stderr)
        return 1
    print(f"check_layers: {sum(1 for _ in sources(argv[1]))} files, no include crosses a layer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
