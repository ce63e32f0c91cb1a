// The one Node API the tests use (to produce zlib data like Python's zlib.compress);
// declared here instead of pulling in all of @types/node for the browser code.
declare module "node:zlib" {
  export function deflateSync(data: Uint8Array): Uint8Array;
}
