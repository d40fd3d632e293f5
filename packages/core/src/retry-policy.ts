/**
 * A dataset's retry policy (ARCHITECTURE.md "Retry policy"), pure: compile the policy once
 * (defaults applied, rule patterns checked), then `decideRetry` turns a failed or evicted
 * task's counters and error summary into reset / fail / wait. firn-dh applies the decision;
 * the dataset validator uses `retryPatternProblem` so a bad pattern is refused at submission.
 */
import { backoffDelay } from './backoff';
import { ValidationError, type ValidationIssue } from './errors';
import { RULE_PATTERN_MAX_LENGTH, compileRulePattern, rulePatternProblem, type RuleMatcher } from './rule-matcher';

/** Multipliers applied to a task's current requirements when a bump rule matches. */
export interface RetryBump {
  memory?: number;
  time?: number;
  disk?: number;
}

/** One error rule as written in the dataset config's `retry.rules`. */
export interface RetryRuleSpec {
  match: string;
  action: 'reset' | 'fail' | 'bump';
  bump?: RetryBump;
}

/** The dataset config's `retry` object (every key optional). */
export interface RetryPolicySpec {
  max_failures?: number;
  max_evictions?: number;
  backoff_seconds?: number;
  backoff_max_seconds?: number;
  rules?: RetryRuleSpec[];
}

export interface CompiledRetryRule extends RetryRuleSpec {
  /** null: the stored pattern does not compile (compileStoredRetryPolicy); the rule never matches. */
  matcher: RuleMatcher | null;
  /** Why `matcher` is null. */
  problem?: string;
}

/** A policy with defaults applied and its rule patterns compiled. */
export interface CompiledRetryPolicy {
  max_failures: number;
  max_evictions: number;
  backoff_seconds: number;
  backoff_max_seconds: number;
  rules: CompiledRetryRule[];
}

export const RETRY_POLICY_DEFAULTS = {
  max_failures: 5,
  max_evictions: 10,
  backoff_seconds: 60,
  backoff_max_seconds: 3600,
} as const;

/** Longest rule pattern accepted. */
export const RETRY_PATTERN_MAX_LENGTH = RULE_PATTERN_MAX_LENGTH;
/** Rules are tested against at most this many leading characters of the error summary. */
export const RETRY_MATCH_MAX_INPUT = 4096;

const BUMP_KEYS = ['memory', 'time', 'disk'] as const;

/**
 * Why a rule pattern is refused, or null when it is fine: the pattern must be RE2 syntax
 * (rule-matcher.ts: matched in linear time, so no pattern can stall the retry cycle; no
 * back-references or lookaround) and at most RETRY_PATTERN_MAX_LENGTH characters.
 */
export function retryPatternProblem(pattern: unknown): string | null {
  return rulePatternProblem(pattern);
}

/** Problems with a `retry` object, each with its JSON path (empty when it is fine). */
export function validateRetryPolicy(spec: unknown, basePath = '/retry'): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (spec === undefined || spec === null) return issues;
  if (typeof spec !== 'object' || Array.isArray(spec)) return [{ path: basePath, message: 'must be an object' }];
  const o = spec as Record<string, unknown>;
  for (const k of ['max_failures', 'max_evictions'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0)) issues.push({ path: `${basePath}/${k}`, message: `must be a non-negative integer, got ${JSON.stringify(v)}` });
  }
  for (const k of ['backoff_seconds', 'backoff_max_seconds'] as const) {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) issues.push({ path: `${basePath}/${k}`, message: `must be a non-negative number, got ${JSON.stringify(v)}` });
  }
  for (const k of Object.keys(o)) {
    if (!['max_failures', 'max_evictions', 'backoff_seconds', 'backoff_max_seconds', 'rules'].includes(k)) issues.push({ path: `${basePath}/${k}`, message: 'is not a retry policy key' });
  }
  if (o.rules === undefined) return issues;
  if (!Array.isArray(o.rules)) return [...issues, { path: `${basePath}/rules`, message: 'must be an array' }];
  o.rules.forEach((r: unknown, i) => {
    const at = `${basePath}/rules/${i}`;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) return issues.push({ path: at, message: 'must be an object' });
    const rule = r as Record<string, unknown>;
    const problem = retryPatternProblem(rule.match);
    if (problem) issues.push({ path: `${at}/match`, message: problem });
    if (!['reset', 'fail', 'bump'].includes(rule.action as string)) issues.push({ path: `${at}/action`, message: `must be reset, fail or bump, got ${JSON.stringify(rule.action)}` });
    if (rule.action === 'bump' && rule.bump === undefined) issues.push({ path: `${at}/bump`, message: 'is required when action is bump' });
    if (rule.bump !== undefined) {
      const b = rule.bump as Record<string, unknown>;
      if (b === null || typeof b !== 'object' || Array.isArray(b) || Object.keys(b).length === 0) {
        issues.push({ path: `${at}/bump`, message: 'must be an object with memory, time or disk multipliers' });
      } else {
        for (const [k, v] of Object.entries(b)) {
          if (!(BUMP_KEYS as readonly string[]).includes(k)) issues.push({ path: `${at}/bump/${k}`, message: 'is not a requirement that can be bumped (memory, time, disk)' });
          else if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) issues.push({ path: `${at}/bump/${k}`, message: `must be a positive number, got ${JSON.stringify(v)}` });
        }
      }
    }
    for (const k of Object.keys(rule)) {
      if (!['match', 'action', 'bump'].includes(k)) issues.push({ path: `${at}/${k}`, message: 'is not a rule key (match, action, bump)' });
    }
    return undefined;
  });
  return issues;
}

/**
 * Defaults applied and patterns compiled (case-insensitive). Throws ValidationError naming
 * each bad field. `undefined` / `null` give the defaults.
 */
export function compileRetryPolicy(spec: unknown, basePath = '/retry'): CompiledRetryPolicy {
  const issues = validateRetryPolicy(spec, basePath);
  if (issues.length) throw new ValidationError('invalid retry policy', issues);
  const o = (spec ?? {}) as RetryPolicySpec;
  return {
    max_failures: o.max_failures ?? RETRY_POLICY_DEFAULTS.max_failures,
    max_evictions: o.max_evictions ?? RETRY_POLICY_DEFAULTS.max_evictions,
    backoff_seconds: o.backoff_seconds ?? RETRY_POLICY_DEFAULTS.backoff_seconds,
    backoff_max_seconds: o.backoff_max_seconds ?? RETRY_POLICY_DEFAULTS.backoff_max_seconds,
    rules: (o.rules ?? []).map((r) => ({ ...r, matcher: compileRulePattern(r.match) })),
  };
}

/**
 * For a policy already stored with a dataset (firn-dh): a rule whose pattern does not
 * compile — a dataset submitted before rules were RE2 — is kept, with `matcher: null`, so
 * it explicitly never matches (and decideRetry says so in its reason) instead of the whole
 * policy or the rule silently disappearing. Anything else wrong still throws.
 */
export function compileStoredRetryPolicy(spec: unknown, basePath = '/retry'): { policy: CompiledRetryPolicy; problems: ValidationIssue[] } {
  const issues = validateRetryPolicy(spec, basePath);
  const rulesPrefix = `${basePath}/rules/`;
  const problems = issues.filter((i) => i.path.startsWith(rulesPrefix) && /^\d+\/match$/.test(i.path.slice(rulesPrefix.length)));
  if (problems.length < issues.length) throw new ValidationError('invalid retry policy', issues.filter((i) => !problems.includes(i)));
  const o = (spec ?? {}) as RetryPolicySpec;
  const policy: CompiledRetryPolicy = {
    max_failures: o.max_failures ?? RETRY_POLICY_DEFAULTS.max_failures,
    max_evictions: o.max_evictions ?? RETRY_POLICY_DEFAULTS.max_evictions,
    backoff_seconds: o.backoff_seconds ?? RETRY_POLICY_DEFAULTS.backoff_seconds,
    backoff_max_seconds: o.backoff_max_seconds ?? RETRY_POLICY_DEFAULTS.backoff_max_seconds,
    rules: (o.rules ?? []).map((r) => {
      const problem = rulePatternProblem(r.match);
      return problem === null ? { ...r, matcher: compileRulePattern(r.match) } : { ...r, matcher: null, problem };
    }),
  };
  return { policy, problems };
}

/** What is known about a task in ERROR or EVICTED when its retry is decided. */
export interface RetryCounters {
  status: 'ERROR' | 'EVICTED';
  /** Errors so far, including the current one. */
  failures: number;
  /** Evictions so far, including the current one. */
  evictions: number;
  errorSummary: string | null;
  /** When the task entered its current status (ms): the backoff runs from here. */
  since: number;
}

export interface RetryDecision {
  /** reset: retry now; fail: give up; wait: retry, but not before `notBefore`. */
  action: 'reset' | 'fail' | 'wait';
  /** Requirement multipliers to apply with the reset (a bump rule matched). */
  bump?: RetryBump;
  /** The rule that matched, if any. */
  rule?: RetryRuleSpec;
  /** Why, for the history row. */
  reason: string;
  /** Earliest retry time (ms); for `fail`, the decision time. */
  notBefore: number;
}

/**
 * Decide what happens to a failed (ERROR) or evicted (EVICTED) task. The first rule whose
 * pattern matches the error summary wins: `fail` gives up at once; `reset` and `bump` retry
 * as usual (bump with the multipliers), within the limits: an ERROR task with failures ≥
 * max_failures, or an EVICTED one with evictions ≥ max_evictions, fails. A retry waits an
 * exponential backoff (backoff_seconds doubling per failure — per eviction for an evicted
 * task — capped at backoff_max_seconds) counted from `since`. `random` in [0, 1) drives the
 * jitter; pass a value derived from the task so repeated decisions agree.
 */
export function decideRetry(policy: CompiledRetryPolicy, task: RetryCounters, now: number, random = 0.5): RetryDecision {
  const summary = (task.errorSummary ?? '').slice(0, RETRY_MATCH_MAX_INPUT);
  const skipped: number[] = [];
  const matched = policy.rules.find((r, i) => {
    if (r.matcher === null) skipped.push(i);
    return r.matcher !== null && r.matcher.test(summary);
  });
  const rule = matched ? { match: matched.match, action: matched.action, ...(matched.bump ? { bump: matched.bump } : {}) } : undefined;
  const skippedText = skipped.length
    ? `rule${skipped.length === 1 ? '' : 's'} ${skipped.map((i) => `rules/${i}`).join(', ')} not tested (pattern is not valid RE2)`
    : '';
  const ruleText = rule ? `error matches rule /${rule.match}/` : '';
  const evicted = task.status === 'EVICTED';
  const count = evicted ? task.evictions : task.failures;
  const limit = evicted ? policy.max_evictions : policy.max_failures;
  const what = evicted ? `eviction ${count} (max_evictions ${limit})` : `failure ${count} (max_failures ${limit})`;
  const base = { ...(rule ? { rule } : {}) };

  const note = skippedText ? `; ${skippedText}` : '';
  if (rule?.action === 'fail') return { ...base, action: 'fail', reason: `${ruleText} with action fail, after ${what}${note}`, notBefore: now };
  if (count >= limit) return { ...base, action: 'fail', reason: `retry policy exhausted: ${what}${ruleText ? `; ${ruleText}` : ''}${note}`, notBefore: now };

  const delay = backoffDelay(count, {
    baseMs: policy.backoff_seconds * 1000,
    maxMs: policy.backoff_max_seconds * 1000,
    random,
  });
  const notBefore = task.since + delay;
  const bump = rule?.action === 'bump' ? rule.bump : undefined;
  const reason = `retry after ${what}, backoff ${Math.round(delay / 1000)} s${ruleText ? `; ${ruleText} (${rule!.action})` : ''}${note}`;
  if (now < notBefore) return { ...base, action: 'wait', reason, notBefore };
  return { ...base, action: 'reset', ...(bump ? { bump } : {}), reason, notBefore };
}
