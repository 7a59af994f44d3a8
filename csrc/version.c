/* piston_version(): the library's own version, compiled in here so that a
 * program linked against libpiston.so can tell it apart from the
 * PISTON_VERSION_STRING of the header it was built with. */
#include "piston.h"

const char *piston_version(void) {
  return PISTON_VERSION_STRING;
}
