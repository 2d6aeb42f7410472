using ReaperProxy.FunctionalTests.Infrastructure;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// The fault tests' proxy: the built executable as a real process (<see cref="ProxyProcess"/>) with one
/// catch-all route to one backend, under a short policy so that reaps take seconds.
/// </summary>
internal static class FaultProxy
{
    /// <summary>The policy most fault tests run under.</summary>
    public static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan PongTimeout = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(1);

    /// <summary>PingInterval + PongTimeout + 25% of the smaller (README, "The reaping deadline"): 2.25 s.</summary>
    public static readonly TimeSpan Deadline = PingInterval + PongTimeout + (PingInterval < PongTimeout ? PingInterval : PongTimeout) / 4;

    /// <summary>
    /// What a loaded 2-core CI machine may add to a measured moment (other test processes run beside):
    /// the proxy's tick, thread-pool wake-ups, the test's own observation.
    /// </summary>
    public static readonly TimeSpan Slack = TimeSpan.FromSeconds(2.5);

    /// <summary>Starts a proxy in front of <paramref name="backend"/>; <paramref name="configure"/> adds to the configuration.</summary>
    public static Task<ProxyProcess> StartAsync(Uri backend, DirectoryInfo dir, Func<ProxyConfig, ProxyConfig>? configure = null)
    {
        var config = ProxyConfig.CatchAll(backend)
            .Set("Reaper:Heartbeat:PingInterval", "1s")
            .Set("Reaper:Heartbeat:PongTimeout", "1s")
            .Set("Reaper:Heartbeat:CloseTimeout", "1s")
            .Set("Reaper:Drain:Period", "0s");
        config = configure?.Invoke(config) ?? config;
        var file = Path.Combine(dir.FullName, $"reaper-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, config.ToJson());
        return ProxyProcess.StartAsync(file);
    }

    /// <summary>The proxy's WebSocket address for <paramref name="path"/>.</summary>
    public static Uri WebSocketUri(this ProxyProcess proxy, string path) =>
        new UriBuilder(new Uri(proxy.PublicUri, path)) { Scheme = "ws" }.Uri;
}
