using System.Text.Json;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Observability;

/// <summary>With <c>Reaper:LogFormat: Json</c> the real process writes one JSON object per line, reaps included.</summary>
public sealed class JsonLogTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_reap_is_one_structured_json_line_with_every_field_operators_need()
    {
        var probe = new BackendProbe();
        await using var backend = await TestBackend.StartAsync(new TestBackendOptions { Map = probe.Map, Output = output });
        var config = ProxyConfig.CatchAll(backend.BaseUri)
            .Set("Reaper:LogFormat", "Json")
            .Set("Reaper:Heartbeat:PingInterval", "300ms")
            .Set("Reaper:Heartbeat:PongTimeout", "300ms");
        var dir = Directory.CreateTempSubdirectory("reaper-json-log-");
        var file = Path.Combine(dir.FullName, "reaper.json");
        File.WriteAllText(file, config.ToJson());
        try
        {
            await using var proxy = await ProxyProcess.StartAsync(file);
            await using (var client = await RawWebSocket.ConnectAsync(new UriBuilder(new Uri(proxy.PublicUri, "record")) { Scheme = "ws" }.Uri))
            {
                await probe.Outcome.WaitAsync(TimeSpan.FromSeconds(10));
            }

            JsonElement reap = default;
            await Eventually.UntilAsync(() => TryFind(proxy.StandardOutput, 2001, out reap), "the reap's JSON log line");
            var state = reap.GetProperty("State");
            Assert.Equal("Information", reap.GetProperty("LogLevel").GetString());
            Assert.Equal("all", state.GetProperty("Route").GetString());
            Assert.Equal("backend", state.GetProperty("Cluster").GetString());
            Assert.Equal(backend.BaseUri.ToString(), state.GetProperty("Destination").GetString());
            Assert.StartsWith("127.0.0.1:", state.GetProperty("Client").GetString());
            Assert.Equal("client", state.GetProperty("Leg").GetString());
            Assert.Equal("pong_timeout", state.GetProperty("Reason").GetString());
            Assert.True(state.TryGetProperty("AgeSeconds", out _));
            // The raw client never answered a ping: its RTT reads "none", never a blank.
            Assert.Equal("none", state.GetProperty("ClientRttMs").GetString());
            Assert.True(state.TryGetProperty("BackendRttMs", out _));

            // Every line on stdout is JSON, the start-up line included.
            foreach (var line in proxy.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                using var _ = JsonDocument.Parse(line);
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static bool TryFind(string stdout, int eventId, out JsonElement found)
    {
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!line.StartsWith('{'))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.GetProperty("EventId").GetInt32() == eventId)
            {
                found = doc.RootElement.Clone();
                return true;
            }
        }

        found = default;
        return false;
    }
}
