// `npm run test:desktop`: the same in-host suite (test/vscode) in DESKTOP VS Code through
// @vscode/test-electron, against the same services as in code-server (test/helpers/stack.ts).
// VS Code comes from VSCODE_EXECUTABLE_PATH, or is downloaded (VSCODE_VERSION, default "stable");
// neither works on the offline CI machine, which runs the suite in code-server instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { BASE_SETTINGS } from '../helpers/codeServer';
import { startStack } from '../helpers/stack';

const ROOT = path.resolve(__dirname, '../../..');

async function main(): Promise<number> {
  const stack = await startStack();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-desktop-'));
  const userDataDir = path.join(dir, 'user-data');
  const workspace = path.join(dir, 'ws');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(workspace);
  fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify({ ...BASE_SETTINGS, ...stack.settings }, null, 2));
  const results = path.join(ROOT, 'test-results', 'desktop.json');
  try {
    await runTests({
      vscodeExecutablePath: process.env.VSCODE_EXECUTABLE_PATH || undefined,
      version: process.env.VSCODE_VERSION || 'stable',
      extensionDevelopmentPath: ROOT,
      extensionTestsPath: path.join(ROOT, 'out', 'test', 'vscode', 'index.js'),
      extensionTestsEnv: { EXAI_INHOST_RESULTS: results, ...stack.testEnv },
      launchArgs: [workspace, '--user-data-dir', userDataDir, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome'],
    });
    console.log(`desktop in-host suite passed; results in ${results}`);
    return 0;
  } catch (err) {
    console.error(`desktop in-host suite failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await stack.stop();
  }
}

main().then((code) => process.exit(code));
