/**
 * TLS files named on the command line, read and parsed up front: a missing file, or one that is
 * not PEM, is a configuration error naming the flag and the file, not a failure to listen or to
 * connect later.
 */
import { readFileSync } from "node:fs";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { ConfigError, errorMessage } from "./errors.js";

/** A PEM certificate (or chain: the first is checked). */
export function readCertificate(path: string, flag: string): Buffer {
  return readPem(path, flag, (pem) => new X509Certificate(pem));
}

/** A PEM private key. */
export function readPrivateKey(path: string, flag: string): Buffer {
  return readPem(path, flag, (pem) => createPrivateKey(pem));
}

function readPem(path: string, flag: string, parse: (pem: Buffer) => unknown): Buffer {
  try {
    const pem = readFileSync(path);
    parse(pem);
    return pem;
  } catch (err) {
    throw new ConfigError(`Cannot use ${flag} "${path}": ${errorMessage(err)}`, { cause: err });
  }
}
