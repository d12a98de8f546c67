#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { ConfigError, readConfig } from '../lib/config';

const app = new App();
try {
  // Only reached with planb:allowPlaceholders=true (otherwise readConfig refused): say it again.
  for (const key of readConfig(app.node).placeholders) {
    console.warn(`note: ${key} still holds the example value from cdk.json: this synth cannot be deployed`);
  }
  buildApp(app);
} catch (error) {
  // A bad input is the user's to fix: one line naming the context key, no stack trace.
  if (error instanceof ConfigError) {
    console.error(`error: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
