/* ncursesw for Swift. NCURSES_WIDECHAR must be set before the include: SwiftPM drops the
 * -D flags pkg-config would give, which would silently turn the wide-character API off. */
#ifndef RINGSIDE_NCURSES_SHIM_H
#define RINGSIDE_NCURSES_SHIM_H
#define NCURSES_WIDECHAR 1
#define _XOPEN_SOURCE_EXTENDED 1
#include <locale.h>
#include <ncursesw/curses.h>
#endif
