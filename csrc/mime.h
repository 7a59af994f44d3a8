/* mime.h: Content-Type by file extension, for file mounts. */
#ifndef PISTON_MIME_H
#define PISTON_MIME_H

#include <stddef.h>

/* Content-Type for a file name (or path: only the last component counts) by
 * its extension, case-insensitive. Text types carry "; charset=utf-8".
 * Unknown or no extension: "application/octet-stream". Returns a static
 * string. */
const char *piston__mime_type(const char *name, size_t len);

#endif
