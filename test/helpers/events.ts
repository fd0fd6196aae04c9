import type { RegistryEvent, RegistryEventSink } from '../../src/audit/registry-events.js';

/** An event sink that keeps every event in memory, for tests that check what was recorded. */
export class CollectingEventSink implements RegistryEventSink {
  readonly events: RegistryEvent[] = [];

  async record(_context: unknown, event: RegistryEvent): Promise<void> {
    this.events.push(event);
  }

  /** Returns the recorded events of one action, oldest first. */
  ofAction<A extends RegistryEvent['action']>(action: A): Array<Extract<RegistryEvent, { action: A }>> {
    return this.events.filter((event): event is Extract<RegistryEvent, { action: A }> => event.action === action);
  }
}
