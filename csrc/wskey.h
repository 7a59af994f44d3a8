#ifndef PISTON_WSKEY_H
#define PISTON_WSKEY_H

#include <stdbool.h>
#include <stddef.h>

#define PISTON_WS_ACCEPT_LEN 28

bool piston__ws_key_valid(const char *key, size_t len);
void piston__ws_accept_value(const char *key, size_t len,
                             char out[PISTON_WS_ACCEPT_LEN + 1]);

#endif
