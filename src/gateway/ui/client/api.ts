/**
 * The admin API as the page calls it: the admin token (kept in
 * sessionStorage by the login form, so it lasts as long as the tab) goes
 * as `Authorization: Bearer`, as `cortex status` sends it.
 */
const TOKEN_KEY = "cortex.adminToken";
const API_KEY = "cortex.apiKey";

export const session = {
  token: (): string => sessionStorage.getItem(TOKEN_KEY) ?? "",
  setToken: (token: string): void => sessionStorage.setItem(TOKEN_KEY, token),
  apiKey: (): string => sessionStorage.getItem(API_KEY) ?? "",
  setApiKey: (key: string): void => sessionStorage.setItem(API_KEY, key),
  clear: (): void => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(API_KEY);
  },
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function adminHeaders(): Record<string, string> {
  const token = session.token();
  return token === "" ? {} : { authorization: `Bearer ${token}` };
}

/** The error message of an OpenAI- or Anthropic-shaped error body, or the status line. */
export async function errorMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { message?: string } };
    if (typeof body.error?.message === "string") return body.error.message;
  } catch {
    // Not JSON: the text itself says what went wrong.
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

export async function adminGet<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: adminHeaders() });
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return (await response.json()) as T;
}

export async function adminPost(path: string, body: unknown): Promise<string> {
  const response = await fetch(path, {
    method: "POST",
    headers: { ...adminHeaders(), "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return ((await response.json()) as { message: string }).message;
}
