namespace ReaperProxy.Probe.Checks;

/// <summary>Every check, in the order they are listed, run and reported.</summary>
internal static class CheckCatalog
{
    public static readonly IReadOnlyList<ICheck> All =
    [
        new SilentClientCheck(),
        new IdleLiveCheck(),
        new NoCloseReplyCheck(),
        new ClientCloseAbandonedCheck(),
        new StalledFrameCheck(),
        new SlowReaderCheck(),
        new PingAnswerCheck(),
    ];

    public static IEnumerable<string> Names => All.Select(c => c.Name);

    public static ICheck? Find(string name) => All.FirstOrDefault(c => c.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
}
