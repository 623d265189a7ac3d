/* table.c - tables laid out exactly as virsh's vsh-table.c does.
 *
 * Each cell is first made safe to print: control characters (and a literal
 * "\x") become \xNN escapes, and a cell's width counts columns (wcwidth),
 * not bytes.  A row is " cell" per column, padded to the column's widest
 * cell plus two spaces, except after the last column.  The header is
 * underlined with (width + 3) dashes per column.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* wcwidth() */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

#include "cli.h"

#define ESC_LEN 4 /* "\xNN" */

typedef struct cell {
    char *text;   /* escaped */
    size_t width; /* in columns */
} cell;

struct cli_table {
    size_t ncols;
    size_t nrows; /* the header is row 0 */
    size_t cap;
    cell *cells;  /* nrows * ncols */
};

/* virsh formats the escape from a plain (signed) char, so a byte >= 0x80
 * comes out as "\xff" once truncated to four characters; do the same so that
 * output stays byte-identical. */
static void put_escape(char **bufp, size_t *width, char c)
{
    char tmp[16];

    snprintf(tmp, sizeof(tmp), "\\x%02x", (unsigned)(int)c);
    memcpy(*bufp, tmp, ESC_LEN);
    *bufp += ESC_LEN;
    *width += ESC_LEN;
}

/* One character of s at *pp that is not a control character; advances *pp. */
static void encode_char(const char **pp, char **bufp, size_t *width, mbstate_t *st)
{
    const char *p = *pp;
    wchar_t wc;
    size_t len = mbrtowc(&wc, p, MB_CUR_MAX, st);

    if (len == (size_t)-1 || len == (size_t)-2) {
        len = 1;
        memset(st, 0, sizeof(*st));
        if (*p < 0x20 || *p > 0x7e) {
            put_escape(bufp, width, *p);
        } else {
            *(*bufp)++ = *p;
            (*width)++;
        }
    } else if (!iswprint((wint_t)wc)) {
        for (size_t i = 0; i < len; i++)
            put_escape(bufp, width, p[i]);
    } else {
        int w = wcwidth(wc);
        memcpy(*bufp, p, len);
        *bufp += len;
        *width += w > 0 ? (size_t)w : 0;
    }
    *pp = p + len;
}

static char *safe_encode(const char *s, size_t *width)
{
    size_t sz = strlen(s);
    char *ret = malloc(sz * ESC_LEN + 1);
    char *buf = ret;
    mbstate_t st;

    if (!ret)
        return NULL;
    memset(&st, 0, sizeof(st));
    *width = 0;
    while (*s) {
        if ((s[0] == '\\' && s[1] == 'x') || (unsigned char)*s < 0x20 || *s == 0x7f) {
            put_escape(&buf, width, *s);
            s++;
        } else {
            encode_char(&s, &buf, width, &st);
        }
    }
    *buf = '\0';
    return ret;
}

static int append_row(cli_table *t, const char *const *cells)
{
    size_t base;

    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        cell *c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c)
            return -1;
        t->cells = c;
        t->cap = cap;
    }
    base = t->nrows * t->ncols;
    for (size_t j = 0; j < t->ncols; j++) {
        cell *c = &t->cells[base + j];
        c->text = safe_encode(cells[j] ? cells[j] : "", &c->width);
        if (!c->text) {
            while (j-- > 0)
                free(t->cells[base + j].text);
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

cli_table *cli_table_new(size_t ncols, const char *const *header)
{
    cli_table *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->ncols = ncols;
    if (append_row(t, header) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

int cli_table_add(cli_table *t, const char *const *cells)
{
    return append_row(t, cells);
}

static void print_row(const cli_table *t, size_t r, const size_t *maxw, FILE *out)
{
    const cell *row = &t->cells[r * t->ncols];

    for (size_t j = 0; j < t->ncols; j++) {
        fprintf(out, " %s", row[j].text);
        if (j + 1 < t->ncols)
            fprintf(out, "%*s", (int)(maxw[j] - row[j].width + 2), "");
    }
    fputc('\n', out);
}

int cli_table_print(cli_table *t, FILE *out)
{
    size_t *maxw = calloc(t->ncols, sizeof(*maxw));

    if (!maxw)
        return -1;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t j = 0; j < t->ncols; j++)
            if (t->cells[r * t->ncols + j].width > maxw[j])
                maxw[j] = t->cells[r * t->ncols + j].width;
    print_row(t, 0, maxw, out);
    for (size_t j = 0; j < t->ncols; j++)
        for (size_t k = 0; k < maxw[j] + 3; k++)
            fputc('-', out);
    fputc('\n', out);
    for (size_t r = 1; r < t->nrows; r++)
        print_row(t, r, maxw, out);
    free(maxw);
    return 0;
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i].text);
    free(t->cells);
    free(t);
}
