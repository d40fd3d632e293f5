/**
 * User-written regular expressions (today: a dataset's retry `rules[].match`), compiled
 * and matched with re2js.
 *
 * Why re2js, not JavaScript's RegExp. A rule is written by any production manager and run
 * by firn-dh on error summaries of up to RETRY_MATCH_MAX_INPUT characters, inside the
 * retry cycle's write transaction. V8's RegExp backtracks: `a*a*a*a*a*a*b` against 72
 * characters of `a` took 28 s (n^6), and nested quantifiers (`(a+)+`) are exponential.
 * Refusing "dangerous" patterns by inspecting them (what Firn did first) is a heuristic
 * that misses polynomial cases like the one above and refused harmless ones. RE2's
 * automata match in time linear in the input for every pattern, so no pattern can stall
 * the cycle; the price is that back-references and lookaround, which need backtracking,
 * are not available (they are refused when the dataset is submitted, naming the rule).
 *
 * Why re2js rather than the native `re2` binding: it is pure JavaScript, so the pilot
 * bundle, CI and every site install need no compiler or prebuilt binary, and the same
 * code answers at submission (firn-tray, `firn validate`) and in firn-dh — a pattern is
 * accepted exactly when it will be matched. Measured on this project's CI machine: a
 * 4,096-character input decides in well under 50 ms for the patterns above.
 *
 * Semantics kept from before: matching is case-insensitive and unanchored (a rule matches
 * when its pattern occurs anywhere in the error summary), as docs/production-manager.md
 * describes. RE2 syntax is Perl/JavaScript-like for everything else (classes, `\d \w \s`,
 * `{n,m}` up to 1000, `(?:…)`, named groups `(?<name>…)`, `(?i)` flags).
 */
import { RE2JS } from 're2js';

/** Longest pattern accepted. */
export const RULE_PATTERN_MAX_LENGTH = 256;

export interface RuleMatcher {
  readonly pattern: string;
  /** True when the pattern occurs anywhere in `text` (case-insensitive). Linear in `text`. */
  test(text: string): boolean;
}

/** A pattern that cannot be compiled (not valid RE2 syntax, too long, not a string). */
export class RulePatternError extends Error {
  override readonly name = 'RulePatternError';
}

/** Why `pattern` is refused, or null when it compiles. Messages are bounded (the pattern is capped). */
export function rulePatternProblem(pattern: unknown): string | null {
  try {
    compileRulePattern(pattern);
    return null;
  } catch (e) {
    if (e instanceof RulePatternError) return e.message;
    throw e;
  }
}

/** Compile a rule pattern; throws RulePatternError with a message fit for a ValidationIssue. */
export function compileRulePattern(pattern: unknown): RuleMatcher {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new RulePatternError('must be a non-empty string');
  if (pattern.length > RULE_PATTERN_MAX_LENGTH) {
    throw new RulePatternError(`is ${pattern.length} characters long, the limit is ${RULE_PATTERN_MAX_LENGTH}`);
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern, RE2JS.CASE_INSENSITIVE);
  } catch (e) {
    // re2js shows the pattern with the case-insensitive flag it added: show the user's own text
    const detail = (e instanceof Error ? e.message : String(e)).replace(/^error parsing regexp: /, '').replace('`(?i)', '`');
    throw new RulePatternError(
      `is not a valid RE2 regular expression (back-references and lookaround are not supported): ${detail.slice(0, 300)}`,
    );
  }
  return { pattern, test: (text: string) => re.matcher(text).find() };
}
