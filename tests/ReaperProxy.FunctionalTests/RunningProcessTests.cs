using System.Diagnostics;
using System.Net;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests;

/// <summary>The executable as a long-running process: serving, watching its file, shutting down.</summary>
public sealed class RunningProcessTests(ITestOutputHelper output) : IDisposable
{
    // A child process notices a file change at its next poll (1 s), then reloads code paths it has not run
    // yet; on a loaded CI machine that takes longer than an in-process change, so allow more than the default.
    private static readonly TimeSpan s_processWait = TimeSpan.FromSeconds(20);

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-running-tests-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task The_process_serves_HTTP_WebSockets_and_admin_and_exits_0_on_SIGTERM()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var file = Write(ProxyConfig.CatchAll(backend.BaseUri).ToJson());
        await using var process = await ProxyProcess.StartAsync(file);
        using var client = TestClients.Http1(process.PublicUri);
        using var admin = TestClients.Http1(process.AdminUri);

        Assert.Equal("hello from backend (HTTP/1.1)", await client.GetStringAsync("/hello"));
        Assert.Equal("ready\n", await admin.GetStringAsync("/readyz"));
        await using (var socket = await TestWebSocket.ConnectHttp1Async(new UriBuilder(new Uri(process.PublicUri, "/echo")) { Scheme = "ws" }.Uri))
        {
            Assert.Equal("hi", await socket.EchoAsync("hi"));
            await socket.CloseAsync();
        }

        var result = await process.StopAsync();

        output.WriteLine(result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(0, result.ExitCode);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("false", "false")]
    [InlineData("true", "true")]
    public async Task Every_Transport_setting_relays_WebSockets_both_ways_and_reaps_a_silent_client(string inlineScheduling, string inlineCompletions)
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var file = Write(ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:Heartbeat:PingInterval", "500ms").Set("Reaper:Heartbeat:PongTimeout", "500ms").ToJson());
        await using var process = await ProxyProcess.StartAsync(file, environment: new Dictionary<string, string>
        {
            ["Reaper__Transport__InlineScheduling"] = inlineScheduling,
            ["Reaper__Transport__InlineSocketCompletions"] = inlineCompletions,
        });
        var url = new UriBuilder(new Uri(process.PublicUri, "/echo")) { Scheme = "ws" }.Uri;
        await using (var socket = await TestWebSocket.ConnectHttp1Async(url))
        {
            for (var i = 0; i < 50; i++)
            {
                Assert.Equal($"message {i}", await socket.EchoAsync($"message {i}"));
            }

            await socket.CloseAsync();
        }

        // A client that reads the proxy's pings but never answers them is still reaped under each setting.
        await using var silent = await RawWebSocket.ConnectAsync(url);
        var pings = 0;
        RawFrame? frame = null;
        var reaped = Stopwatch.StartNew();
        try
        {
            while ((frame = await silent.ReceiveFrameAsync(TimeSpan.FromSeconds(15))) is { Opcode: RawFrame.Ping })
            {
                pings++;
            }
        }
        catch (IOException)
        {
            // The dead leg's connection is aborted (a reset) once it is reaped.
            frame = null;
        }

        Assert.True(pings > 0, "no ping reached the silent client");
        Assert.True(frame is null or { Opcode: RawFrame.Close }, $"expected the proxy's Close or the end of the connection, got {frame}");
        Assert.True(reaped.Elapsed < TimeSpan.FromSeconds(10), $"reaped after {reaped.Elapsed}, the deadline is 1 s");

        var result = await process.StopAsync();
        Assert.Equal(0, result.ExitCode);
    }

    [Fact]
    public async Task SIGTERM_drains_WebSockets_with_1001_spread_over_the_period_and_the_process_exits_0_in_time()
    {
        var period = TimeSpan.FromSeconds(2);
        var closeTimeout = TimeSpan.FromSeconds(1);
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var file = Write(ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:Drain:Period", "2s").Set("Reaper:Heartbeat:CloseTimeout", "1s").ToJson());
        await using var process = await ProxyProcess.StartAsync(file);
        var uri = new UriBuilder(new Uri(process.PublicUri, "/echo")) { Scheme = "ws" }.Uri;
        var sockets = new List<System.Net.WebSockets.ClientWebSocket>();
        for (var i = 0; i < 6; i++)
        {
            var socket = new System.Net.WebSockets.ClientWebSocket();
            await socket.ConnectAsync(uri, CancellationToken.None);
            sockets.Add(socket);
        }

        await Eventually.UntilAsync(() => backend.OpenWebSockets == sockets.Count, "every backend WebSocket open", TimeSpan.FromSeconds(5));
        var clock = Stopwatch.StartNew();

        // Live clients: each answers the proxy's Close, as a browser does.
        var closes = sockets.Select(async socket =>
        {
            var buffer = new byte[256];
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            var at = clock.Elapsed;
            await socket.CloseOutputAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            return (result.CloseStatus, result.CloseStatusDescription, At: at);
        }).ToList();
        var stop = process.StopAsync(TimeSpan.FromSeconds(30));

        var results = await Task.WhenAll(closes).WaitAsync(period + closeTimeout + TimeSpan.FromSeconds(5));
        var result = await stop;

        output.WriteLine(result.ToString());
        output.WriteLine("close times: " + string.Join(", ", results.Select(r => $"{r.At.TotalMilliseconds:0}ms")));
        Assert.All(results, r =>
        {
            Assert.Equal(System.Net.WebSockets.WebSocketCloseStatus.EndpointUnavailable, r.CloseStatus);
            Assert.Equal("proxy shutting down", r.CloseStatusDescription);
        });
        var times = results.Select(r => r.At).Order().ToList();
        Assert.True(times[^1] - times[0] >= period / 2, "the closes must be spread over Reaper:Drain:Period");
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(0, result.ExitCode);
        Assert.InRange(clock.Elapsed, period * 0.6, period + closeTimeout + TimeSpan.FromSeconds(3) + TimeSpan.FromSeconds(2));
        Assert.Contains("closing 6 WebSocket(s) with Close 1001 and ending 0 pass-through one(s), spread over 2s", result.StandardOutput, StringComparison.Ordinal);
        await Eventually.UntilAsync(() => backend.OpenWebSockets == 0, "every backend WebSocket closed", TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_second_SIGTERM_ends_a_long_drain_at_once()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var file = Write(ProxyConfig.CatchAll(backend.BaseUri).Set("Reaper:Drain:Period", "60s").ToJson());
        await using var process = await ProxyProcess.StartAsync(file);
        var uri = new UriBuilder(new Uri(process.PublicUri, "/echo")) { Scheme = "ws" }.Uri;
        var sockets = new List<System.Net.WebSockets.ClientWebSocket>();
        for (var i = 0; i < 3; i++)
        {
            var socket = new System.Net.WebSockets.ClientWebSocket();
            await socket.ConnectAsync(uri, CancellationToken.None);
            sockets.Add(socket);
        }

        await Eventually.UntilAsync(() => backend.OpenWebSockets == sockets.Count, "every backend WebSocket open", TimeSpan.FromSeconds(5));
        var clock = Stopwatch.StartNew();
        process.SendSigterm();
        await Task.Delay(500);
        Assert.False(process.HasExited, "a 60 s drain is still under way after one SIGTERM");

        var result = await process.StopAsync(TimeSpan.FromSeconds(20));

        output.WriteLine(result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(0, result.ExitCode);
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(8));
    }

    [Fact]
    public async Task A_default_start_in_a_container_logs_no_warnings_and_writes_nothing_to_its_home()
    {
        // As in the official .NET images: DOTNET_RUNNING_IN_CONTAINER=true makes ASP.NET Core warn about a
        // DataProtection key ring stored in the (ephemeral) home directory, if anything creates one there.
        var home = Directory.CreateDirectory(Path.Combine(_dir.FullName, "home"));
        var file = Write(ProxyConfig.CatchAll(new Uri("http://127.0.0.1:9/")).ToJson());
        await using var process = await ProxyProcess.StartAsync(file, environment: new Dictionary<string, string>
        {
            ["HOME"] = home.FullName,
            ["DOTNET_RUNNING_IN_CONTAINER"] = "true",
        });
        using var admin = TestClients.Http1(process.AdminUri);
        Assert.Equal("ready\n", await admin.GetStringAsync("/readyz"));

        var result = await process.StopAsync();

        output.WriteLine(result.ToString());
        Assert.Equal(0, result.ExitCode);
        var logged = (result.StandardOutput + result.StandardError).Split('\n');
        Assert.DoesNotContain(logged, l => l.Contains(" warn: ", StringComparison.Ordinal) || l.Contains(" fail: ", StringComparison.Ordinal) || l.Contains(" crit: ", StringComparison.Ordinal));
        Assert.DoesNotContain("DataProtection", result.StandardOutput + result.StandardError, StringComparison.Ordinal);
        Assert.Empty(home.EnumerateFileSystemInfos());
    }

    [Fact]
    public async Task A_running_process_rejects_a_bad_file_keeps_serving_and_applies_a_later_good_one()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = new ProxyConfig().Cluster("backend", backend.BaseUri).Route("hello", "/hello", "backend");
        var file = Write(config.ToJson());
        await using var process = await ProxyProcess.StartAsync(file);
        try
        {
            await RejectThenApply(process, file, config);
        }
        finally
        {
            output.WriteLine($"--- process stdout ---\n{process.StandardOutput}--- process stderr ---\n{process.StandardError}");
        }
    }

    private async Task RejectThenApply(ProxyProcess process, string file, ProxyConfig config)
    {
        using var client = TestClients.Http1(process.PublicUri);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/post")).StatusCode);

        // The process polls the file on its own (once a second); nothing here pokes it.
        var clock = Stopwatch.StartNew();
        Write(config.Clone().Set("Reaper:Heartbeat:PingInterval", "0s").Route("post", "/post", "backend").ToJson());
        await Eventually.UntilAsync(
            () => process.StandardOutput.Contains($"Configuration reload of {file} rejected", StringComparison.Ordinal),
            "the process to log that it rejected the bad file",
            s_processWait);
        output.WriteLine($"bad file rejected after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Contains("Reaper:Heartbeat:PingInterval", process.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("hello from backend (HTTP/1.1)", await client.GetStringAsync("/hello"));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/post")).StatusCode);

        clock.Restart();
        Write(config.Clone().Route("post", "/post", "backend").ToJson());
        await Eventually.UntilAsync(
            async () =>
            {
                using var response = await client.PostAsync("/post", new StringContent("new route"));
                return response.StatusCode == HttpStatusCode.OK && await response.Content.ReadAsStringAsync() == "new route";
            },
            "the new route from the good file to serve",
            s_processWait);
        output.WriteLine($"good file applied after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal("hello from backend (HTTP/1.1)", await client.GetStringAsync("/hello"));
        Assert.False(process.HasExited);
    }

    private string Write(string json)
    {
        var path = Path.Combine(_dir.FullName, "reaper.json");
        var temp = path + ".tmp";
        File.WriteAllText(temp, json);
        File.Move(temp, path, overwrite: true);
        return path;
    }
}
