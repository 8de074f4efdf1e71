/**
 * A client on a raw TCP connection, for what fetch cannot do: hold a
 * keep-alive connection idle, stop halfway through a request, trickle a body.
 */
export interface RawConnection {
  /** Everything the server sent so far. */
  received(): string;
  write(text: string): void;
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
  /** Resolves once the server's bytes contain `text`. */
  receivedText(text: string): Promise<void>;
  end(): void;
}

export async function rawConnection(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  let received = "";
  let onClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    onClosed = resolve;
  });
  const watchers: { text: string; resolve: () => void }[] = [];
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_socket, data) {
        received += data.toString();
        for (const watcher of watchers.splice(0))
          if (received.includes(watcher.text)) watcher.resolve();
          else watchers.push(watcher);
      },
      close() {
        onClosed();
      },
      error() {
        onClosed();
      },
    },
  });
  return {
    received: () => received,
    write: (text) => {
      socket.write(text);
    },
    closed,
    receivedText: (text) =>
      received.includes(text)
        ? Promise.resolve()
        : new Promise((resolve) => watchers.push({ text, resolve })),
    end: () => socket.end(),
  };
}
