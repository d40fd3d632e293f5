// @firn/tray — firn-tray, the JSON-RPC API for people. Only what is exported here may be used by others.
export { startTray, createTrayContext, trayMethods, type Tray, type TrayOptions } from './server';
export { submitDataset, addJobs, insertRows, rowsPerInsert, type SubmitParams, type SubmitResult, type SubmitOptions, type AddJobsParams } from './submit';
export { fetchModule, checkModuleUrl, type FetchOptions, type FetchedModule } from './external-modules';
export { LoginLimiter } from './login-limiter';
export { LdapAuthenticator, escapeDnValue, bindDn } from './ldap';
export { checkCredentials } from './auth';
export { suspendTasks, resetTasks, type Scope, type ControlOutcome } from './control';
export type { TrayContext, TrayConfig } from './context';
