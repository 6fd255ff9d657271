/**
 * The transport ceiling for the serving benchmark: a grpc-js server with Strata's service paths
 * that answers every request with one constant, pre-encoded response of the real size. Whatever
 * Strata does beyond this is its read path. Usage: node ceiling-server.js PORT RESPONSE_FILE
 */
import { readFileSync } from "node:fs";
import {
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { FRAME_PREFIX_BYTES, frameMessage, installMessageFraming } from "../serve/message-framing.js";

const [port, responseFile] = process.argv.slice(2);
// Framed in place as Strata's responses are, so that neither pays grpc-js's copy.
installMessageFraming();
const message = readFileSync(responseFile!);
const response = frameMessage(Buffer.alloc(FRAME_PREFIX_BYTES + message.length));
message.copy(response);
const raw = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};
const server = new Server({ "grpc-node.flow_control_window": 1 << 20 });
server.addService(
  {
    GetFeatures: {
      path: "/strata.v1.FeatureStore/GetFeatures",
      requestStream: false,
      responseStream: false,
      ...raw,
    },
    StreamFeatures: {
      path: "/strata.v1.FeatureStore/StreamFeatures",
      requestStream: true,
      responseStream: true,
      ...raw,
    },
  },
  {
    GetFeatures: (_call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => cb(null, response),
    StreamFeatures: (call: ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", () => {
        if (!call.write(response)) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      });
      call.on("end", () => call.end());
    },
  },
);
server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write("ready\n");
});
