/* imagelist.c — the image files of a directory, sorted by name (train/eval data sets). */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int is_image(const char *name)
{
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.')
        return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i]))
            return 1;
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int cli_list_images(const char *cmd, const char *dir, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "uflow %s: cannot read directory '%s': %s\n", cmd, dir, strerror(errno));
        return -1;
    }
    char **v = NULL;
    int cnt = 0, cap = 0, oom = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_image(e->d_name))
            continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) {
                oom = 1;
                break;
            }
            v = nv;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(v[cnt] = malloc(len))) {
            oom = 1;
            break;
        }
        snprintf(v[cnt], len, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(v[cnt], &sb) == 0 && S_ISREG(sb.st_mode))
            cnt++;
        else
            free(v[cnt]); /* a directory or a dangling link with an image's name */
    }
    closedir(d);
    if (oom) {
        fprintf(stderr, "uflow %s: out of memory listing '%s'\n", cmd, dir);
        cli_free_list(v, cnt);
        return -1;
    }
    if (cnt)
        qsort(v, (size_t)cnt, sizeof *v, cmp);
    *out = v;
    *n = cnt;
    return 0;
}

void cli_free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
