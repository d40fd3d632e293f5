// @firn/client — the `firn` CLI. Exported for tests and for commands other packages add.
export { buildProgram, createContext, main, runArgv, clientVersion } from './cli';
export { attachContext, contextOf, call, connection, globals, output, print, rpcClient, parseTarget, type CliContext, type CliIo, type GlobalOptions } from './context';
export { CliError, ExitCode, EXIT_CODES_HELP, exitCodeOf } from './exit-codes';
export { configDir, loadSettings, saveSettings, type ClientSettings } from './settings';
export { splitArgs, runShell, type ShellOptions } from './commands/shell';
export { completer, datasetIdSource, type CompletionSources } from './commands/completion';
export { table, countBars } from './output';
