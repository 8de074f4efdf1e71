/** Listen addresses: "host:port", ":port" or "port"; IPv6 as "[::1]:port". */
export interface ListenAddress {
  hostname: string;
  port: number;
}

export function parseListen(value: string): ListenAddress | undefined {
  const text = value.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1] ?? "";
    portText = v6[2] ?? "";
  } else if (/^\d+$/.test(text)) {
    host = "0.0.0.0";
    portText = text;
  } else {
    const idx = text.lastIndexOf(":");
    if (idx < 0) return undefined;
    host = text.slice(0, idx) || "0.0.0.0";
    portText = text.slice(idx + 1);
  }
  if (!/^\d+$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 0 || port > 65535) return undefined;
  return { hostname: host, port };
}
