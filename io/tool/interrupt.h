// Interrupts of the gfs tool: SIGINT and SIGTERM stop a command at its next
// step (Interrupted(), declared in commands.h, says which signal came).
#pragma once

#include <string>

#include "common/status.h"

namespace gfs::tool {

// The local temporary file being written (get), removed by the signal
// handler at once; cleared when it is renamed into place or removed.
void SetLocalTemp(const std::string& path);
void ClearLocalTemp();
// kUnavailable "interrupted by SIGINT" (or SIGTERM).
Status InterruptedStatus();

}  // namespace gfs::tool
