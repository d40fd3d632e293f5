// @firn/web — the web monitor: server-rendered pages, charts, live updates, and controls that act
// only through firn-tray. firn-mon mounts it with mountWeb(app, {db, config, logger}); firn-web
// runs it alone. Only what is exported here may be used by others.
export { mountWeb, trayUrlOf, safeNext, type WebApp, type WebDeps } from './web-routes';
export { startWeb, type StartWebOptions, type RunningWeb } from './web-server';
export { main as webMain } from './cli';
export { html, raw, escapeHtml, joinHtml, jsonForScript, SafeHtml, type HtmlValue } from './html';
export * from './queries';
export { csrfFor, csrfMatches, parseCookies, serializeCookie } from './session';
export { TrayGateway, type WebUser } from './tray-gateway';
