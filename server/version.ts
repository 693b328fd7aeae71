// The daemon's version, injected by esbuild from package.json (see esbuild.js `define`).
declare const __EXAI_VERSION__: string;
export const VERSION: string = typeof __EXAI_VERSION__ === 'string' ? __EXAI_VERSION__ : '0.0.0-dev';
