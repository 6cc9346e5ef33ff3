/* ncursesw for Swift. NCURSES_WIDECHAR must be set before the include: SwiftPM drops the
 * -D flags pkg-config would give, which would silently turn the wide-character API off.
 *
 * Swift cannot import function-like macros, runtime tables (ACS_*) or, in Swift 6 mode, read
 * mutable C globals (stdscr, LINES, COLS); the static inline functions below expose exactly
 * those, and nothing more. Remember: SwiftPM does not rebuild dependants when only this header
 * changes (rm -rf the build directory after an edit). */
#ifndef RINGSIDE_NCURSES_SHIM_H
#define RINGSIDE_NCURSES_SHIM_H
#define NCURSES_WIDECHAR 1
#define _XOPEN_SOURCE_EXTENDED 1
#include <locale.h>
#include <signal.h>
#include <unistd.h>
#include <wchar.h>
#include <ncursesw/curses.h>

/* Globals, read through functions (Swift 6 rejects reading them directly). */
static inline WINDOW *rs_stdscr(void) { return stdscr; }
static inline int rs_lines(void) { return LINES; }
static inline int rs_cols(void) { return COLS; }
static inline int rs_colors(void) { return COLORS; }
static inline int rs_color_pairs(void) { return COLOR_PAIRS; }

/* Attributes (macros built from NCURSES_BITS, not imported). */
static inline attr_t rs_a_normal(void) { return A_NORMAL; }
static inline attr_t rs_a_bold(void) { return A_BOLD; }
static inline attr_t rs_a_reverse(void) { return A_REVERSE; }
static inline attr_t rs_a_underline(void) { return A_UNDERLINE; }
static inline attr_t rs_a_dim(void) { return A_DIM; }
static inline attr_t rs_a_blink(void) { return A_BLINK; }
static inline attr_t rs_a_standout(void) { return A_STANDOUT; }
static inline attr_t rs_a_italic(void) { return A_ITALIC; }
static inline attr_t rs_color_pair(int n) { return (attr_t)COLOR_PAIR(n); }

/* Keys that are macros of macros. */
static inline int rs_key_f(int n) { return KEY_F(n); }

/* Size of a window (getmaxyx is a macro). */
static inline int rs_getmaxy(WINDOW *w) { return getmaxy(w); }
static inline int rs_getmaxx(WINDOW *w) { return getmaxx(w); }

/* Writes one wide character with attributes and a colour pair at (y, x) of `w`.
 * setcchar + mvwadd_wch, so the Swift side never builds a cchar_t itself. */
static inline int rs_put_wch(WINDOW *w, int y, int x, wchar_t ch, attr_t attrs, short pair) {
    cchar_t c;
    wchar_t text[2] = { ch, 0 };
    if (setcchar(&c, text, attrs, pair, NULL) != OK) return ERR;
    return mvwadd_wch(w, y, x, &c);
}

/* Reads back the character and attributes at (y, x) (tests of the ncurses backend). */
static inline int rs_get_wch(WINDOW *w, int y, int x, wchar_t *ch, attr_t *attrs, short *pair) {
    cchar_t c;
    wchar_t text[CCHARW_MAX + 1];
    if (mvwin_wch(w, y, x, &c) != OK) return ERR;
    if (getcchar(&c, text, attrs, pair, NULL) == ERR) return ERR;
    *ch = text[0];
    return OK;
}

/* Async-signal-safe enough terminal restore for a crash handler: endwin writes the reset
 * sequences; then the default action is re-raised. */
static inline void rs_crash_restore(int sig) {
    endwin();
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline void rs_install_crash_handlers(void) {
    int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP };
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND;
        sa.sa_handler = rs_crash_restore;
        sigaction(sigs[i], &sa, NULL);
    }
}

#endif
