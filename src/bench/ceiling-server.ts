/**
 * The transport ceiling for the serving benchmark: a grpc-js server with Strata's service paths
 * that answers every request with one constant, pre-encoded response of the real size. Whatever
 * Strata does beyond this is its read path. Usage: node ceiling-server.js PORT RESPONSE_FILE [direct]
 *
 * The ceiling is grpc-js's server. Strata serves GetFeatures and StreamFeatures on HTTP/2
 * itself (decision 32), with less CPU a message than grpc-js spends; with `direct` this server
 * does the same (the same pre-encoded answers through serveDirectly), so that the bench can also
 * say what the read path costs against a transport like Strata's own.
 */
import { readFileSync } from "node:fs";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { FRAME_PREFIX_BYTES, frameMessage, installMessageFraming } from "../serve/message-framing.js";
import { RAW_METHODS } from "./raw-methods.js";
import {
  serveDirectly,
  unaryAsBidi,
  type BidiCall,
  type UnaryCall,
  type UnaryCallback,
} from "../serve/direct-bidi.js";

const [port, responseFile, mode] = process.argv.slice(2);
// Framed in place as Strata's responses are, so that neither pays grpc-js's copy.
installMessageFraming();
const message = readFileSync(responseFile!);
const response = frameMessage(Buffer.alloc(FRAME_PREFIX_BYTES + message.length));
message.copy(response);
const server = new Server({ "grpc-node.flow_control_window": 1 << 20 });
const { GetFeatures, StreamFeatures } = RAW_METHODS;
const methods = { GetFeatures, StreamFeatures };
const handlers = {
  GetFeatures: (_call: UnaryCall<Buffer>, cb: UnaryCallback<Buffer>) => cb(null, response),
  StreamFeatures: (call: BidiCall<Buffer, Buffer>) => {
    call.on("data", () => {
      if (!call.write(response)) {
        call.pause();
        call.once("drain", () => call.resume());
      }
    });
    call.on("end", () => call.end());
  },
};
server.addService(methods, handlers);
if (mode === "direct") {
  const ok = serveDirectly(
    server,
    [
      { definition: methods.StreamFeatures, handler: handlers.StreamFeatures },
      { definition: methods.GetFeatures, handler: unaryAsBidi(handlers.GetFeatures) },
    ],
    { maxRequestBytes: 4 << 20, maxResponseBytes: 64 << 20 },
  );
  if (!ok) throw new Error("this grpc-js cannot be served directly");
}
server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write("ready\n");
});
