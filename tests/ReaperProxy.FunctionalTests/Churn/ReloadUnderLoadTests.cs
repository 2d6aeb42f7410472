using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Performance;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Churn;

/// <summary>
/// Config reloads of a real proxy process while 500 WebSockets are open and echoing (issue 13, fault suite):
/// a valid reload drops none of them, and an invalid one changes nothing — it is rejected and counted in
/// <c>reaper_config_reloads_total{result="rejected"}</c>, the connections keep echoing, the last good
/// configuration keeps serving. Alone (not beside the parallel tests): 500 echo loops fill both cores.
/// </summary>
[Collection(PerformanceSmokeCollection.Name)]
public sealed class ReloadUnderLoadTests(ITestOutputHelper output) : IDisposable
{
    private const int Connections = 500;
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-reload-load-");
    private long _echoes;

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Reloads_while_500_WebSockets_echo_drop_none_and_a_bad_reload_changes_nothing()
    {
        var clock = Stopwatch.StartNew();
        await using var backend = await TestBackend.StartAsync(new() { Output = null });
        var config = new ProxyConfig()
            .Cluster("backend", backend.BaseUri)
            .Route("echo", "/echo", "backend")
            .Route("hello", "/hello", "backend")
            .Set("Reaper:Drain:Period", "0s");
        var file = Path.Combine(_dir.FullName, "reaper.json");
        File.WriteAllText(file, config.ToJson());
        await using var proxy = await ProxyProcess.StartAsync(file);
        using var admin = TestClients.Http1(proxy.AdminUri);
        using var client = TestClients.Http1(proxy.PublicUri);
        var echo = new UriBuilder(new Uri(proxy.PublicUri, "/echo")) { Scheme = "ws" }.Uri;

        var clients = new TestWebSocket[Connections];
        using (var gate = new SemaphoreSlim(32))
        {
            await Task.WhenAll(Enumerable.Range(0, Connections).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    clients[i] = await TestWebSocket.ConnectHttp1Async(echo);
                }
                finally
                {
                    gate.Release();
                }
            }));
        }

        var sockets = clients.Select(c => c.Socket).ToArray();
        await AssertActiveAsync(admin, Connections, "all 500 open");
        output.WriteLine($"{Connections} WebSockets open after {clock.Elapsed.TotalSeconds:F1} s");

        // Every connection echoes numbered messages, one at a time, all through both reloads.
        using var stop = new CancellationTokenSource();
        var loops = sockets.Select((socket, i) => Task.Run(() => EchoLoopAsync(socket, i, stop.Token))).ToArray();
        await Eventually.UntilAsync(() => loops.All(l => !l.IsCompleted) && Volatile.Read(ref _echoes) >= 2 * Connections, "every connection to echo");

        // A valid reload: a shorter PingInterval for every route and a new route.
        var good = config.Clone()
            .Set("Reaper:Heartbeat:PingInterval", "2s")
            .Route("post", "/post", "backend");
        WriteAtomically(file, good.ToJson());
        await Eventually.UntilAsync(async () => (await MetricsText.ScrapeAsync(admin)).Sum("reaper_config_reloads_total", "result=\"applied\"") == 1,
            "the valid reload to be applied", TimeSpan.FromSeconds(30));
        await Eventually.UntilAsync(async () => (await client.PostAsync("/post", new StringContent("new route"))).StatusCode == HttpStatusCode.OK,
            "the new route to serve", TimeSpan.FromSeconds(30));
        var afterGood = Volatile.Read(ref _echoes);

        // An invalid one that would also remove /hello and /post: rejected, nothing of it applied.
        var bad = good.Clone().Remove("ReverseProxy:Routes:hello").Remove("ReverseProxy:Routes:post").Set("Reaper:Heartbeat:PongTimeout", "0s");
        WriteAtomically(file, bad.ToJson());
        await Eventually.UntilAsync(async () => (await MetricsText.ScrapeAsync(admin)).Sum("reaper_config_reloads_total", "result=\"rejected\"") == 1,
            "the invalid reload to be rejected", TimeSpan.FromSeconds(30));
        Assert.Equal("hello from backend (HTTP/1.1)", await client.GetStringAsync("/hello"));
        using (var posted = await client.PostAsync("/post", new StringContent("still here")))
        {
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        }

        // Traffic kept flowing on every connection after both reloads.
        await Eventually.UntilAsync(() => Volatile.Read(ref _echoes) >= afterGood + 2 * Connections, "echoes to go on after the reloads", TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        var results = await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(30));

        var metrics = await MetricsText.ScrapeAsync(admin);
        output.WriteLine($"{Volatile.Read(ref _echoes)} echoes in all; reloads applied {metrics.Sum("reaper_config_reloads_total", "result=\"applied\"")}, " +
                         $"rejected {metrics.Sum("reaper_config_reloads_total", "result=\"rejected\"")}; closed so far {metrics.Sum("reaper_connections_closed_total")}; {clock.Elapsed.TotalSeconds:F1} s");
        Assert.All(results.Select((error, i) => (error, i)), r => Assert.True(r.error is null, $"connection {r.i}: {r.error}"));
        Assert.Equal(0, metrics.Sum("reaper_connections_closed_total"));
        Assert.Equal(1, metrics.Sum("reaper_config_reloads_total", "result=\"applied\""));
        Assert.Equal(1, metrics.Sum("reaper_config_reloads_total", "result=\"rejected\""));
        await AssertActiveAsync(admin, Connections, "all 500 still open after the reloads");
        Assert.Contains("reload", proxy.StandardOutput + proxy.StandardError, StringComparison.OrdinalIgnoreCase);

        // Each one still echoes intact, then closes normally.
        await Task.WhenAll(sockets.Select(async (socket, i) =>
        {
            Assert.Equal($"after {i}", await EchoOnceAsync(socket, $"after {i}", Eventually.Within(TimeSpan.FromSeconds(30))));
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", Eventually.Within(TimeSpan.FromSeconds(30)));
        }));
        await Eventually.UntilAsync(async () => (await MetricsText.ScrapeAsync(admin)).Sum("reaper_connections_active") == 0,
            "reaper_connections_active to return to 0", TimeSpan.FromSeconds(30));
        foreach (var c in clients)
        {
            await c.DisposeAsync();
        }

        output.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s");
    }

    // Returns null, or what went wrong on this connection (an error, a Close, an echo that differs).
    private async Task<string?> EchoLoopAsync(ClientWebSocket socket, int id, CancellationToken stop)
    {
        for (var seq = 0; !stop.IsCancellationRequested; seq++)
        {
            var message = $"{id}:{seq}:" + new string((char)('a' + (seq % 26)), seq % 300);
            try
            {
                var echoed = await EchoOnceAsync(socket, message, Eventually.Within(TimeSpan.FromSeconds(30)));
                if (echoed != message)
                {
                    return $"message {seq} came back as '{echoed[..Math.Min(40, echoed.Length)]}'";
                }
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
            {
                return $"message {seq}: {ex.GetType().Name}: {ex.Message} (state {socket.State}, close {socket.CloseStatus} {socket.CloseStatusDescription})";
            }

            Interlocked.Increment(ref _echoes);
            await Task.Delay(Random.Shared.Next(20, 80), CancellationToken.None);
        }

        return null;
    }

    private static async Task<string> EchoOnceAsync(ClientWebSocket socket, string message, CancellationToken cancellationToken)
    {
        await socket.SendAsync(Encoding.UTF8.GetBytes(message), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
        var buffer = new byte[1024];
        var count = 0;
        ValueWebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer.AsMemory(count), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, $"Close {socket.CloseStatus} '{socket.CloseStatusDescription}' instead of the echo");
            }

            count += result.Count;
        }
        while (!result.EndOfMessage);

        return Encoding.UTF8.GetString(buffer, 0, count);
    }

    private static async Task AssertActiveAsync(HttpClient admin, int expected, string what) =>
        await Eventually.UntilAsync(async () => (await MetricsText.ScrapeAsync(admin)).Sum("reaper_connections_active") == expected,
            $"reaper_connections_active to be {expected} ({what})", TimeSpan.FromSeconds(30));

    private static void WriteAtomically(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
