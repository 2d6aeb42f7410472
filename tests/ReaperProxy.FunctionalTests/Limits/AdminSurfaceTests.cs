using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Limits;

/// <summary>
/// The admin surface: none of its paths is answered by the public listener, even by routes written to
/// match them; the optional bearer token guards /metrics and /connections and leaves the probes open; a
/// start with the admin listener beyond loopback and no token warns (event 1004).
/// </summary>
public sealed class AdminSurfaceTests(ITestOutputHelper output) : IDisposable
{
    private const string Token = "test-admin-token-0123456789abcdef";
    private static readonly string[] s_adminPaths = ["/metrics", "/healthz", "/readyz", "/connections"];
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-admin-surface-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Routes_that_match_the_admin_paths_reach_the_backend_never_the_admin_app()
    {
        await using var backend = await TestBackend.StartAsync(new()
        {
            Output = output,
            Map = app => app.MapGet("/{**path}", (HttpContext c) => $"backend {c.Request.Path}"),
        });
        var config = ProxyConfig.CatchAll(backend.BaseUri).Route("metrics", "/metrics", "backend").Route("probes", "/{probe:regex(^(healthz|readyz)$)}", "backend");
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        using var client = TestClients.Http1(proxy.PublicUri);

        foreach (var path in s_adminPaths)
        {
            Assert.Equal($"backend {path}", await client.GetStringAsync(path));

            // Even when the request names the admin listener as its host.
            using var request = new HttpRequestMessage(HttpMethod.Get, path) { Headers = { Host = proxy.AdminUri.Authority } };
            using var response = await client.SendAsync(request);
            Assert.Equal($"backend {path}", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(2 * s_adminPaths.Length, backend.Requests.Count);
    }

    [Fact]
    public async Task With_a_token_metrics_and_connections_want_it_and_the_probes_stay_open()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri).Set("Reaper:AdminToken", Token), new() { Output = output });
        await AssertGuardedAsync(proxy.AdminUri, Token);
    }

    [Fact]
    public async Task The_process_warns_when_the_admin_listener_is_beyond_loopback_without_a_token_and_honours_a_token_file()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        var config = Path.Combine(_dir.FullName, "reaper.json");
        File.WriteAllText(config, ProxyConfig.CatchAll(backend.BaseUri).WithTestDefaults().ToJson());

        // Bound on every interface (port 0, only for the few seconds of the test; only loopback talks to it).
        await using (var exposed = await ProxyProcess.StartAsync(config, ["--admin-urls", "http://0.0.0.0:0"]))
        {
            await Eventually.UntilAsync(() => exposed.StandardOutput.Contains("ReaperProxy.Admin[1004]", StringComparison.Ordinal), "the warning about an exposed admin listener");
            Assert.Contains("Set Reaper:AdminToken or Reaper:AdminTokenFile", exposed.StandardOutput, StringComparison.Ordinal);
        }

        // A mounted Secret: the token file, with the newline such files often end with.
        var tokenFile = Path.Combine(_dir.FullName, "admin-token");
        File.WriteAllText(tokenFile, Token + "\n");
        File.WriteAllText(config, ProxyConfig.CatchAll(backend.BaseUri).Set("Reaper:AdminTokenFile", tokenFile).WithTestDefaults().ToJson());
        await using var guarded = await ProxyProcess.StartAsync(config, ["--admin-urls", "http://0.0.0.0:0"]);
        var admin = new Uri($"http://127.0.0.1:{guarded.AdminUri.Port}/");
        await AssertGuardedAsync(admin, Token);
        Assert.DoesNotContain("[1004]", (await guarded.StopAsync()).StandardOutput, StringComparison.Ordinal);
    }

    private static async Task AssertGuardedAsync(Uri admin, string token)
    {
        using var anonymous = TestClients.Http1(admin);
        foreach (var path in new[] { "/metrics", "/connections" })
        {
            using var none = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal("Bearer", Assert.Single(none.Headers.WwwAuthenticate).Scheme);

            using var wrong = new HttpRequestMessage(HttpMethod.Get, path) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token + "x") } };
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(wrong)).StatusCode);

            using var right = new HttpRequestMessage(HttpMethod.Get, path) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) } };
            using var ok = await anonymous.SendAsync(right);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        Assert.Equal("ok\n", await anonymous.GetStringAsync("/healthz"));
        Assert.Equal("ready\n", await anonymous.GetStringAsync("/readyz"));
    }
}
