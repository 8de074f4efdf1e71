/**
 * A scripted neuron that dies on a load, as a real one does when libllama
 * aborts on a bad file: it answers `/health` and `/models` (one file, nothing
 * loaded) and on `POST /models/load` closes the connection without a reply
 * (the gateway sees a reset mid-load). It counts the loads it was sent.
 */
import { file, GiB, health } from "../../unit/gateway-fixtures.ts";

export interface CrashingNeuron {
  name: string;
  url: string;
  /** `POST /models/load` requests received. */
  loads(): number;
  stop(): void;
}

export function startCrashingNeuron(name: string, modelFile: string): CrashingNeuron {
  let loads = 0;
  const reply = (text: string) =>
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`;
  const listener = Bun.listen<{ buffer: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buffer: "" };
      },
      data(socket, data) {
        socket.data.buffer += data.toString();
        const head = socket.data.buffer.split("\r\n", 1)[0] ?? "";
        if (!socket.data.buffer.includes("\r\n\r\n")) return;
        if (head.startsWith("GET /health")) socket.end(reply(JSON.stringify(health(name))));
        else if (head.startsWith("GET /models"))
          socket.end(reply(JSON.stringify({ available: [file(modelFile, GiB)], loaded: [] })));
        else if (head.startsWith("POST /models/load")) {
          loads += 1;
          socket.terminate();
        } else socket.end(reply("{}"));
      },
      error() {
        // the gateway went away; nothing to clean up
      },
    },
  });
  return {
    name,
    url: `http://127.0.0.1:${listener.port}`,
    loads: () => loads,
    stop: () => listener.stop(true),
  };
}
