// The system prompts are Markdown files bundled as text (esbuild.js: loader '.md': 'text'): the daemon
// ships as one file, so nothing is read from disk at run time.
declare module '*.md' {
  const text: string;
  export default text;
}
