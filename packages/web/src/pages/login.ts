import { html, type SafeHtml } from '../html';
import { layout, type ViewContext } from './layout';

export function loginPage(ctx: ViewContext, csrf: string, next: string, error?: string, username = ''): SafeHtml {
  const body = html`<h1>Log in</h1>
<p class="muted">With your firn-tray account. ${ctx.anonymousRead ? 'Viewing needs no login; controls do.' : 'Every page needs a login (a viewer account is enough); controls need a manager.'}</p>
${error ? html`<p class="flash flash-error" id="login-error">${error}</p>` : ''}
<form method="post" action="/login" class="login" id="login-form">
  <input type="hidden" name="csrf" value="${csrf}">
  <input type="hidden" name="next" value="${next}">
  <label>User <input type="text" name="username" autocomplete="username" value="${username}" required maxlength="190"></label>
  <label>Password <input type="password" name="password" autocomplete="current-password" required maxlength="1024"></label>
  <button type="submit" id="login-submit">Log in</button>
</form>`;
  return layout(ctx, { title: 'Log in', body, crumbs: [['Log in', null]] });
}
