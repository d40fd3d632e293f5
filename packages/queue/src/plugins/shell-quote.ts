/**
 * Quoting for the `/bin/sh` scripts the plugins write. Commands the daemon itself runs
 * never go through a shell (Executor.exec takes an argument vector); these helpers are
 * only for text that a shell on the worker node will read.
 */

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quote one value so that `sh` reads it back as exactly one word with exactly this text:
 * no expansion, no globbing, no word splitting. Safe words are left bare for readability.
 */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a shell word cannot contain a NUL byte');
  if (value === '') return "''";
  if (SAFE_WORD.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Quote every word and join them with spaces. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}

/** A portable environment-variable name (what `export NAME=…` accepts in every sh). */
export function isShellName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

/**
 * Split a configured command line (e.g. `[system] pilot` = `node '/opt/my firn/pilot.js'`)
 * into words the way sh would — whitespace separates words, '…' is literal, "…" and a
 * backslash escape — but without any expansion. Each word is later re-quoted with
 * shellQuote, so `$`, `;`, backquotes … in the configured text stay literal characters.
 */
export function splitCommandLine(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in command line: ${text}`);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      inWord = true;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated " in command line: ${text}`);
        const d = text[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) {
          word += text[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new Error(`trailing backslash in command line: ${text}`);
      word += text[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
