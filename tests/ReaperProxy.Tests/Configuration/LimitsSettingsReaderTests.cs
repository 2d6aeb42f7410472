using ReaperProxy.Configuration;

namespace ReaperProxy.Tests.Configuration;

/// <summary>Reaper:Limits, the admin token and a route's ReaperMaxConnections: defaults, parsing, every problem named.</summary>
public class LimitsSettingsReaderTests
{
    private const string Token = "0123456789abcdef0123";

    [Fact]
    public void The_limits_default_to_an_edge_proxy_s_values_and_match_the_shipped_defaults_file()
    {
        var defaults = LimitsSettings.Default;
        Assert.Equal(TimeSpan.FromSeconds(10), defaults.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(75), defaults.KeepAliveTimeout);
        Assert.Equal(32 * 1024, defaults.MaxRequestHeadersTotalSize);
        Assert.Equal(100, defaults.MaxRequestHeaderCount);
        Assert.Equal(1000, defaults.MaxUpgradesInProgress);

        Assert.Equal(defaults, Read("{}").Limits);
        var shipped = Read(File.ReadAllText(Path.Combine(TestConfiguration.RepositoryRoot(), "config", "defaults.json")));
        Assert.Equal(defaults, shipped.Limits);
        Assert.Null(shipped.AdminToken);
        Assert.Null(shipped.AdminTokenFile);
    }

    [Fact]
    public void Every_limit_is_read()
    {
        var limits = Read("""
            { "Reaper": { "Limits": {
              "RequestHeadersTimeout": "2s", "KeepAliveTimeout": "00:01:00",
              "MaxRequestHeadersTotalSize": "16384", "MaxRequestHeaderCount": 50, "MaxUpgradesInProgress": 7 } } }
            """).Limits;

        Assert.Equal(new LimitsSettings(TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(1), 16384, 50, 7), limits);
    }

    [Fact]
    public void Every_bad_limit_is_reported_with_its_key_path_at_once()
    {
        var errors = Errors("""
            { "Reaper": { "Limits": {
              "RequestHeadersTimeout": "0s", "KeepAliveTimeout": "10",
              "MaxRequestHeadersTotalSize": "32KB", "MaxRequestHeaderCount": "-1", "MaxUpgradesInProgress": "0",
              "MaxHeaders": 3 } } }
            """);

        Assert.Equal(
            ["Reaper:Limits:KeepAliveTimeout", "Reaper:Limits:MaxHeaders", "Reaper:Limits:MaxRequestHeaderCount",
             "Reaper:Limits:MaxRequestHeadersTotalSize", "Reaper:Limits:MaxUpgradesInProgress", "Reaper:Limits:RequestHeadersTimeout"],
            errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.Contains(errors, e => e.Message == "'32KB' is not a positive whole number of bytes");
        Assert.Contains(errors, e => e.Message.StartsWith("unknown setting 'MaxHeaders' (known: RequestHeadersTimeout,", StringComparison.Ordinal));
    }

    [Fact]
    public void A_Kestrel_limit_that_Reaper_Limits_sets_is_refused_with_where_to_set_it()
    {
        var error = Assert.Single(Errors("""{ "Kestrel": { "Limits": { "RequestHeadersTimeout": "00:00:30", "MaxRequestLineSize": 8192 } } }"""));

        Assert.Equal("Kestrel:Limits:RequestHeadersTimeout", error.Path);
        Assert.Equal("set Reaper:Limits:RequestHeadersTimeout instead: ReaperProxy sets this Kestrel limit from there (default 10s)", error.Message);
    }

    [Fact]
    public void An_admin_token_is_read_from_the_setting_or_a_file()
    {
        Assert.Equal(Token, Read($$"""{ "Reaper": { "AdminToken": "{{Token}}" } }""").AdminToken);

        var file = Path.GetTempFileName();
        try
        {
            // A Kubernetes Secret's file often ends with a newline.
            File.WriteAllText(file, Token + "\n");
            var settings = Read($$"""{ "Reaper": { "AdminTokenFile": "{{file}}" } }""");
            Assert.Equal(file, settings.AdminTokenFile);
            Assert.Null(settings.AdminToken);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("short", "the token has 5 characters; use at least 16 (e.g. `openssl rand -hex 32`)")]
    [InlineData("0123456789 abcdef", "the token must be printable ASCII without spaces (it is sent in an Authorization header)")]
    public void A_weak_or_unsendable_admin_token_is_refused(string token, string message)
    {
        Assert.Equal(new ConfigError("Reaper:AdminToken", message), Assert.Single(Errors($$"""{ "Reaper": { "AdminToken": "{{token}}" } }""")));
    }

    [Fact]
    public void An_unreadable_token_file_or_both_token_settings_are_refused()
    {
        var missing = Assert.Single(Errors("""{ "Reaper": { "AdminTokenFile": "/nonexistent/reaper-token" } }"""));
        Assert.Equal("Reaper:AdminTokenFile", missing.Path);
        Assert.StartsWith("cannot read '/nonexistent/reaper-token': ", missing.Message);

        var both = Assert.Single(Errors($$"""{ "Reaper": { "AdminToken": "{{Token}}", "AdminTokenFile": "/x" } }"""));
        Assert.Equal(new ConfigError("Reaper:AdminTokenFile", "set AdminToken or AdminTokenFile, not both"), both);
    }

    [Fact]
    public void A_route_s_ReaperMaxConnections_is_read_and_a_bad_one_named()
    {
        const string Proxy = """
            "ReverseProxy": {
              "Routes": {
                "capped": { "ClusterId": "c", "Match": { "Path": "/a" }, "Metadata": { "ReaperMaxConnections": "25" } },
                "free": { "ClusterId": "c", "Match": { "Path": "/b" } }
              },
              "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
            }
            """;
        var settings = Read("{" + Proxy + "}");
        Assert.Equal(25, settings.MaxConnectionsForRoute("capped", metadataValue: null));

        // Reaper's own reading wins for a route it knows, even when it says "no cap".
        Assert.Null(settings.MaxConnectionsForRoute("free", metadataValue: "3"));

        // A route from another provider: its metadata as YARP hands it over.
        Assert.Equal(3, settings.MaxConnectionsForRoute("elsewhere", metadataValue: "3"));
        Assert.Null(settings.MaxConnectionsForRoute("elsewhere", metadataValue: "lots"));

        var error = Assert.Single(Errors("{" + Proxy.Replace("\"25\"", "\"0\"", StringComparison.Ordinal) + "}"));
        Assert.Equal("ReverseProxy:Routes:capped:Metadata:ReaperMaxConnections", error.Path);
        Assert.StartsWith("'0' is not a positive whole number of WebSockets", error.Message);
    }

    private static ReaperSettings Read(string json)
    {
        var settings = ReaperSettingsReader.Read(TestConfiguration.FromJson(json), out var errors);
        Assert.Empty(errors);
        return settings;
    }

    private static IReadOnlyList<ConfigError> Errors(string json)
    {
        ReaperSettingsReader.Read(TestConfiguration.FromJson(json), out var errors);
        return errors;
    }
}
