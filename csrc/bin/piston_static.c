/* piston-static: a fast static server on the engine, and the C API's
 * example. Fixed text routes and one directory, answered entirely in C. */
#define _GNU_SOURCE
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: piston-static [--bind HOST:PORT] [--dir DIR] [--text "
    "PATH=BODY]...\n"
    "                     [--threads N] [limits and timeouts]\n"
    "\n"
    "Serves fixed text responses and the files of one directory over "
    "HTTP/1.1.\n"
    "\n"
    "  --dir DIR              serve the files under DIR at /\n"
    "  --text PATH=BODY       answer GET PATH with BODY as text/plain "
    "(repeatable)\n";

/* Applies the command line to srv: 0 to serve, 1 after --help, 2 for a
 * usage error (already reported). */
static int configure(piston_cli *cli, piston_server *srv, int argc,
                     char **argv) {
  const char *dir = NULL;
  static const piston_header text_type[] = {
      {{"Content-Type", 12}, {"text/plain; charset=utf-8", 25}}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      printf("%s%s", usage, piston_cli_common_help);
      return 1;
    }
    int rc = piston_cli_common(cli, srv, argc, argv, &i);
    if (rc < 0)
      return 2;
    if (rc == 1)
      continue;
    if ((strcmp(a, "--dir") == 0 || strcmp(a, "--text") == 0) &&
        i + 1 >= argc) {
      fprintf(stderr, "piston-static: %s needs a value\n", a);
      return 2;
    }
    if (strcmp(a, "--dir") == 0) {
      dir = argv[++i];
    } else if (strcmp(a, "--text") == 0) {
      const char *spec = argv[++i];
      const char *eq = strchr(spec, '=');
      if (!eq || spec[0] != '/') {
        fprintf(stderr,
                "piston-static: --text wants PATH=BODY with PATH starting "
                "with '/', not '%s'\n",
                spec);
        return 2;
      }
      char *path = strndup(spec, (size_t)(eq - spec));
      int r = path ? piston_server_route_fixed(srv, NULL, path, 200, text_type,
                                               1, eq + 1, strlen(eq + 1))
                   : PISTON_ENOMEM;
      free(path);
      if (r != 0) {
        fprintf(stderr, "piston-static: cannot add --text %s: %s\n", spec,
                piston_strerror(r));
        return 2;
      }
    } else {
      fprintf(stderr,
              "piston-static: unknown option '%s' (see piston-static --help)\n",
              a);
      return 2;
    }
  }
  if (dir) {
    int r = piston_server_route_dir(srv, "/", dir);
    if (r != 0) {
      fprintf(stderr, "piston-static: cannot serve --dir %s: %s\n", dir,
              piston_strerror(r));
      return 2;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  piston_cli cli = {
      .prog = "piston-static", .threads = 1, .shutdown_timeout_ms = 30000};
  piston_server *srv = piston_server_new();
  if (!srv) {
    fprintf(stderr, "piston-static: out of memory\n");
    return 1;
  }
  int rc = configure(&cli, srv, argc, argv);
  if (rc == 0)
    rc = piston_cli_listen(&cli, srv) != 0 ? 2 : piston_cli_serve(&cli, srv);
  else if (rc == 1)
    rc = 0;
  piston_server_free(srv);
  return rc;
}
