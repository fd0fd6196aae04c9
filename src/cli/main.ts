import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { withCommandDatabase } from './database.js';
import { registerAccountCommands } from './accounts.js';
import { registerCertificationCommands } from './certification-commands.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerAuditRetentionCommands } from './audit-retention.js';

function loadConfigOrExit(): ReturnType<typeof loadConfig> {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

const program = new Command();
program.name('portcullis').description('OCI registry gateway that serves only certified images');

program
  .command('serve')
  .description('run the gateway (settings come from environment variables; see README.md)')
  .action(async () => {
    const config = loadConfigOrExit();
    const logger = createLogger(config.logLevel);
    // Loaded here so that the other commands start without the whole server.
    const { startGateway } = await import('../server.js');
    const gateway = await startGateway(config, logger).catch((error: unknown) => {
      logger.fatal({ err: error }, 'start failed');
      process.exit(1);
    });
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'signal received');
      gateway
        .stop()
        .then(() => process.exit(0))
        .catch((error: unknown) => {
          logger.error({ err: error }, 'stop failed');
          process.exit(1);
        });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });

program
  .command('migrate')
  .description('apply pending database migrations and exit')
  .action(async () => {
    const config = loadConfigOrExit();
    const logger = createLogger(config.logLevel);
    // withCommandDatabase applies the migrations before it runs the work.
    await withCommandDatabase(config, logger, async () => undefined);
  });

registerAccountCommands(program, loadConfigOrExit);
registerCertificationCommands(program);
registerAuditRetentionCommands(registerAuditCommands(program), loadConfigOrExit);

await program.parseAsync(process.argv);
