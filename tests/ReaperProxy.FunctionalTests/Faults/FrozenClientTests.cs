using System.Diagnostics;
using System.Net.NetworkInformation;
using System.Net.WebSockets;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// A real client process (node's <c>ws</c>, which answers pings by itself) frozen with SIGSTOP, as a
/// suspended laptop or a stopped container: the proxy reaps it, the backend gets Close 1001, and after
/// SIGCONT the client sees its connection closed.
/// </summary>
public sealed class FrozenClientTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-faults-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task An_idle_client_process_frozen_with_SIGSTOP_is_reaped_within_the_deadline_and_sees_its_connection_closed_after_SIGCONT()
    {
        var probe = new BackendProbe();
        await using var backend = await TestBackend.StartAsync(new() { Map = probe.Map, Output = output });
        await using var proxy = await FaultProxy.StartAsync(backend.BaseUri, _dir);
        await using var client = await NodeClient.StartAsync(proxy.WebSocketUri("/record"), "idle");
        await client.WaitForLineAsync("ready", TimeSpan.FromSeconds(30));

        // Live and idle: it answers the proxy's pings, so it is kept past the deadline.
        await Task.Delay(FaultProxy.Deadline + TimeSpan.FromSeconds(0.5));
        Assert.False(probe.Outcome.IsCompleted, "a live idle client was cut before it was frozen");

        Signals.Send(client.Id, Signals.SigStop);
        var frozen = Stopwatch.StartNew();
        var outcome = await probe.Outcome.WaitAsync(FaultProxy.Deadline + FaultProxy.Slack + TimeSpan.FromSeconds(5));
        var reapedAfter = frozen.Elapsed;
        output.WriteLine($"idle client frozen: backend got {(int?)outcome.CloseStatus} '{outcome.CloseDescription}' {reapedAfter.TotalSeconds:0.00} s after SIGSTOP (deadline {FaultProxy.Deadline.TotalSeconds} s)");

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.Equal("client unresponsive", outcome.CloseDescription);
        Assert.True(reapedAfter <= FaultProxy.Deadline + FaultProxy.Slack, $"reaped {reapedAfter.TotalSeconds:0.00} s after SIGSTOP; deadline {FaultProxy.Deadline.TotalSeconds} s");

        Signals.Send(client.Id, Signals.SigCont);
        var thawed = Stopwatch.StartNew();
        var close = await client.WaitForLineAsync("close", TimeSpan.FromSeconds(10));
        output.WriteLine($"after SIGCONT the client printed '{close}' within {thawed.Elapsed.TotalSeconds:0.00} s");
        Assert.StartsWith("close 1006", close, StringComparison.Ordinal);
        Assert.Contains("client_dead", await ReapedSeriesAsync(proxy), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_downloading_client_process_frozen_with_SIGSTOP_is_reaped_and_its_socket_is_reset_not_left_in_FIN_WAIT_1_with_unsent_bytes()
    {
        Skip.IfNot(TcpTable.Supported, "reads /proc/net/tcp (Linux)");
        var probe = new BackendProbe();
        await using var backend = await TestBackend.StartAsync(new() { Map = probe.Map, Output = output });
        await using var proxy = await FaultProxy.StartAsync(backend.BaseUri, _dir);
        await using var client = await NodeClient.StartAsync(proxy.WebSocketUri("/stream?total=1048576&delayMs=1000"), "wait");
        var clientPort = int.Parse((await client.WaitForLineAsync("local ", TimeSpan.FromSeconds(30)))["local ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        await client.WaitForLineAsync("ready", TimeSpan.FromSeconds(30));

        Signals.Send(client.Id, Signals.SigStop);
        var frozen = Stopwatch.StartNew();

        // Its kernel keeps taking bytes until its receive buffer is full; from then on the proxy sees no
        // progress. The deadline counts from that moment, which on loopback comes within milliseconds.
        var outcome = await probe.Outcome.WaitAsync(FaultProxy.Deadline + FaultProxy.Slack + TimeSpan.FromSeconds(5));
        var reapedAfter = frozen.Elapsed;
        output.WriteLine($"downloading client frozen: backend got {(int?)outcome.CloseStatus} '{outcome.CloseDescription}' {reapedAfter.TotalSeconds:0.00} s after SIGSTOP (deadline {FaultProxy.Deadline.TotalSeconds} s)");
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, outcome.CloseStatus);
        Assert.Equal("client unresponsive", outcome.CloseDescription);
        Assert.True(reapedAfter <= FaultProxy.Deadline + FaultProxy.Slack, $"reaped {reapedAfter.TotalSeconds:0.00} s after SIGSTOP; deadline {FaultProxy.Deadline.TotalSeconds} s");

        // The proxy's side of the connection (local = its public port, remote = the frozen client) must be
        // gone: a reset, not a FIN queued behind megabytes the frozen peer will never take, which the
        // kernel would keep (FIN-WAIT-1, zero-window probes) for as long as the peer's kernel answers.
        foreach (var socket in TcpTable.Read().Where(s => s.Remote.Port == clientPort || s.Local.Port == clientPort))
        {
            output.WriteLine("at the reap: " + socket);
        }

        var left = await TcpTable.UntilGoneAsync(s => s.Remote.Port == clientPort && s.Local.Port == proxy.PublicUri.Port, TimeSpan.FromSeconds(3));
        foreach (var socket in left)
        {
            output.WriteLine("left: " + socket);
        }

        Assert.DoesNotContain(left, s => s.State == TcpState.FinWait1 && s.SendQueue > 0);
        Assert.Empty(left);

        Signals.Send(client.Id, Signals.SigCont);
        var close = await client.WaitForLineAsync("close", TimeSpan.FromSeconds(10));
        output.WriteLine($"after SIGCONT the client printed '{close}'");
        Assert.StartsWith("close 1006", close, StringComparison.Ordinal);
    }

    private static async Task<string> ReapedSeriesAsync(ProxyProcess proxy)
    {
        using var admin = TestClients.Http1(proxy.AdminUri);
        var metrics = await admin.GetStringAsync("/metrics");
        return string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("reaper_connections_closed_total", StringComparison.Ordinal)));
    }
}
