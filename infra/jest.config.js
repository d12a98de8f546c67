/** Jest runs the TypeScript tests through ts-jest; `tsc --noEmit` is the type gate, so ts-jest only transpiles (isolatedModules in tsconfig.json). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
  },
  // Synthesizing the stack stages the Docker context and the proxy asset: give it room on a busy machine.
  testTimeout: 120000,
};
