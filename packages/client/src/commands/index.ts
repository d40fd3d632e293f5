import type { Command } from 'commander';
import * as auth from './auth';
import * as datasets from './datasets';
import * as db from './db';
import * as expand from './expand';
import * as grid from './grid';
import * as shell from './shell';
import * as up from './up';
import * as user from './user';
import * as validate from './validate';
import * as why from './why';

/**
 * Every command group of `firn`, in help order. To add one (e.g. `up`, `demo`, `run`, `site`):
 * a file here exporting `register(program: Command)`, and one line in this list.
 */
export const COMMAND_GROUPS: ReadonlyArray<{ register(program: Command): void }> = [
  auth, datasets, grid, user, validate, expand, db, shell, up, why,
];
