/**
 * Where each conversation was last served, as every gateway replica sees it
 * (`[state]` Redis: state/redis-conversation-homes.ts). A replica's own
 * memory of served prefixes (prefix-affinity.ts) misses the turns other
 * replicas served, and rendezvous hashing (rendezvous.ts) agrees only while
 * every replica would have placed the conversation on its hash winner; a
 * first turn placed elsewhere (the winner too busy, a copy that one replica
 * had not seen yet, a failover) would then be sent back and forth between
 * nodes. The shared record makes whichever node a conversation went to the
 * one every replica sends its next turn to.
 */

export interface ConversationHomes {
  /**
   * The node that last served the conversation (PrefixChain.conversation);
   * undefined when none is recorded or the store did not answer in time
   * (routing then does without). Never rejects.
   */
  lookup(conversation: bigint): Promise<string | undefined>;
  /** The node served a turn of the conversation. Returns at once; never throws. */
  record(conversation: bigint, node: string): void;
}
