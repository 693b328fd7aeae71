// The bench's baseline extension (bench/cases/extension.ts): nothing to load, nothing to do.
exports.activate = function activate() {};
exports.deactivate = function deactivate() {};
