namespace ReaperProxy.Configuration;

/// <summary>
/// <c>Reaper:Transport</c>: how the process schedules socket I/O. Read at start only, like
/// <c>AdminUrls</c>: a reload's change takes effect at the next restart. Every proxied message crosses four sockets (two reads,
/// two writes), so a thread hop saved per socket operation is most of what a relay costs beyond the
/// kernel; docs/performance.md has the measurements behind the defaults.
/// </summary>
/// <param name="InlineScheduling">
/// Kestrel's <c>UnsafePreferInlineScheduling</c>: run the client side's pipe continuations on the
/// thread that completed the socket operation instead of queueing them to Kestrel's I/O queues. Nothing
/// in the relay blocks a thread, but no gain was measurable here (docs/performance.md), so Kestrel's
/// default stands. Default <c>false</c>.
/// </param>
/// <param name="InlineSocketCompletions">
/// The runtime's <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>: run every socket completion on
/// the epoll thread that saw it, for both legs, instead of queueing it to the thread pool. Saves
/// another hop per message but puts all connections' work on a few threads: one slow continuation
/// delays every socket served by that thread. Default <c>false</c>. Also honoured when the
/// environment variable is set to 1 before start.
/// </param>
public sealed record TransportSettings(bool InlineScheduling, bool InlineSocketCompletions)
{
    /// <summary>The defaults.</summary>
    public static TransportSettings Default { get; } = new(InlineScheduling: false, InlineSocketCompletions: false);
}
