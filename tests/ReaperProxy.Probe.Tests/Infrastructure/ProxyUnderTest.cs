using ReaperProxy.FunctionalTests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Infrastructure;

/// <summary>A real ReaperProxy process (the built ReaperProxy.dll) in front of a <see cref="TargetServer"/>, with a short policy.</summary>
public sealed class ProxyUnderTest : IAsyncDisposable
{
    private readonly ProxyProcess _process;
    private readonly string _configFile;

    private ProxyUnderTest(ProxyProcess process, string configFile, Uri webSocketUri)
    {
        _process = process;
        _configFile = configFile;
        WebSocketUri = webSocketUri;
    }

    /// <summary>The target's <c>/ws</c> through the proxy.</summary>
    public Uri WebSocketUri { get; }

    public Uri AdminUri => _process.AdminUri;

    /// <summary>The proxy's log so far.</summary>
    public string Log => _process.StandardOutput + _process.StandardError;

    /// <summary>
    /// Starts ReaperProxy with PingInterval = PongTimeout = CloseTimeout = <paramref name="policy"/> (and an
    /// IdleTimeout, off by default) in front of <paramref name="target"/>.
    /// </summary>
    public static async Task<ProxyUnderTest> StartAsync(TargetServer target, string policy, string? idleTimeout = null)
    {
        var config = ProxyConfig.CatchAll(target.BaseUri)
            .Set("Reaper:Heartbeat:PingInterval", policy)
            .Set("Reaper:Heartbeat:PongTimeout", policy)
            .Set("Reaper:Heartbeat:CloseTimeout", policy)
            .Set("Reaper:Heartbeat:IdleTimeout", idleTimeout)
            .WithTestDefaults();
        var file = Path.Combine(Path.GetTempPath(), $"reaperproxy-probe-test-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, config.ToJson());
        var process = await ProxyProcess.StartAsync(file);
        return new ProxyUnderTest(process, file, new UriBuilder(new Uri(process.PublicUri, "ws")) { Scheme = "ws" }.Uri);
    }

    public async ValueTask DisposeAsync()
    {
        await _process.StopAsync(TimeSpan.FromSeconds(15));
        await _process.DisposeAsync();
        File.Delete(_configFile);
    }
}
