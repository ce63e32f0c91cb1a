// esbuild extracts imported CSS into <entry>.css next to the bundle; the import has no value.
declare module "*.css";
