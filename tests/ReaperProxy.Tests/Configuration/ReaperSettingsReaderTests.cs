using Microsoft.Extensions.Configuration;
using ReaperProxy.Configuration;

namespace ReaperProxy.Tests.Configuration;

public class ReaperSettingsReaderTests
{
    private const string OneRoute = """
        "ReverseProxy": {
          "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
          "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
        }
        """;

    [Fact]
    public void An_empty_configuration_yields_the_built_in_defaults()
    {
        var settings = ReaperSettingsReader.Read(new ConfigurationBuilder().Build(), out var errors);

        Assert.Empty(errors);
        Assert.Equal(HeartbeatPolicy.Default, settings.DefaultPolicy);
        Assert.Equal(ReaperSettings.DefaultAdminUrls, settings.AdminUrls);
        Assert.Equal(LogFormat.Simple, settings.LogFormat);
        Assert.Empty(settings.Policies);
        Assert.Empty(settings.RoutePolicies);
    }

    [Fact]
    public void The_built_in_defaults_are_the_documented_ones()
    {
        var p = HeartbeatPolicy.Default;

        Assert.Null(p.Name);
        Assert.Equal(HeartbeatMode.Enforce, p.Mode);
        Assert.Equal(HeartbeatLegs.Both, p.Legs);
        Assert.Equal(TimeSpan.FromSeconds(15), p.PingInterval);
        Assert.Equal(TimeSpan.FromSeconds(10), p.PongTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), p.CloseTimeout);
        Assert.Null(p.IdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(27.5), p.ReapDeadline);
    }

    [Fact]
    public void The_shipped_defaults_file_matches_the_built_in_defaults()
    {
        var json = File.ReadAllText(Path.Combine(TestConfiguration.RepositoryRoot(), "config", "defaults.json"));

        var settings = ReaperSettingsReader.Read(TestConfiguration.FromJson(json), out var errors);

        Assert.Empty(errors);
        Assert.Equal(HeartbeatPolicy.Default, settings.DefaultPolicy);
        Assert.Equal(ReaperSettings.DefaultAdminUrls, settings.AdminUrls);
        Assert.Equal(LogFormat.Simple, settings.LogFormat);
    }

    [Theory]
    [InlineData("defaults.json")]
    [InlineData("example.json")]
    [InlineData("demo.json")]
    public void Every_shipped_configuration_file_is_valid(string file)
    {
        var json = File.ReadAllText(Path.Combine(TestConfiguration.RepositoryRoot(), "config", file));

        ReaperSettingsReader.Read(TestConfiguration.FromJson(json), out var errors);

        Assert.Empty(errors);
    }

    [Fact]
    public void Every_Heartbeat_field_is_read_in_either_duration_form()
    {
        var settings = Read("""
            {
              "Reaper": {
                "AdminUrls": "http://127.0.0.1:19464;http://[::1]:19464",
                "LogFormat": "json",
                "Heartbeat": {
                  "Mode": "observe", "Legs": "Client",
                  "PingInterval": "00:00:20", "PongTimeout": "1.5s", "CloseTimeout": "500ms", "IdleTimeout": "2m"
                }
              }
            }
            """);

        Assert.Equal("http://127.0.0.1:19464;http://[::1]:19464", settings.AdminUrls);
        Assert.Equal(LogFormat.Json, settings.LogFormat);
        Assert.Equal(
            new HeartbeatPolicy
            {
                Mode = HeartbeatMode.Observe,
                Legs = HeartbeatLegs.Client,
                PingInterval = TimeSpan.FromSeconds(20),
                PongTimeout = TimeSpan.FromSeconds(1.5),
                CloseTimeout = TimeSpan.FromMilliseconds(500),
                IdleTimeout = TimeSpan.FromMinutes(2),
            },
            settings.DefaultPolicy);
    }

    [Fact]
    public void A_policy_subset_inherits_the_rest_from_Heartbeat_not_from_the_built_in_defaults()
    {
        var settings = Read("""
            {
              "Reaper": {
                "Heartbeat": { "Mode": "Observe", "Legs": "Backend", "PingInterval": "20s", "IdleTimeout": "10m" },
                "Policies": {
                  "chat": { "PongTimeout": "3s" },
                  "legacy": { "Mode": "Off" },
                  "empty": {}
                }
              }
            }
            """);

        var chat = settings.Policies["chat"];
        Assert.Equal("chat", chat.Name);
        Assert.Equal(HeartbeatMode.Observe, chat.Mode);
        Assert.Equal(HeartbeatLegs.Backend, chat.Legs);
        Assert.Equal(TimeSpan.FromSeconds(20), chat.PingInterval);
        Assert.Equal(TimeSpan.FromSeconds(3), chat.PongTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), chat.CloseTimeout);
        Assert.Equal(TimeSpan.FromMinutes(10), chat.IdleTimeout);

        Assert.Equal(settings.DefaultPolicy with { Name = "legacy", Mode = HeartbeatMode.Off }, settings.Policies["legacy"]);
        Assert.False(settings.Policies["legacy"].Pings(HeartbeatLegs.Client));
    }

    [Fact]
    public void Policy_names_are_case_insensitive_and_routes_resolve_their_policy()
    {
        var settings = Read("""
            {
              "Reaper": { "Policies": { "Chat": { "PingInterval": "5s" } } },
              "ReverseProxy": {
                "Routes": {
                  "chat": { "ClusterId": "c", "Match": { "Path": "/chat" }, "Metadata": { "ReaperPolicy": "chat" } },
                  "other": { "ClusterId": "c", "Match": { "Path": "/other" } }
                },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """);

        Assert.Equal("chat", settings.RoutePolicies["chat"]);
        Assert.Null(settings.RoutePolicies["other"]);
        Assert.Equal(TimeSpan.FromSeconds(5), settings.PolicyForRoute("chat").PingInterval);
        Assert.Equal(settings.DefaultPolicy, settings.PolicyForRoute("other"));
        Assert.Equal(settings.DefaultPolicy, settings.PolicyForRoute("no-such-route"));
        Assert.Equal(settings.DefaultPolicy, settings.PolicyForRoute(null));
        Assert.Equal(TimeSpan.FromSeconds(5), settings.PolicyNamed("CHAT").PingInterval);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("\"off\"")]
    [InlineData("\"Off\"")]
    [InlineData("\"none\"")]
    [InlineData("\"\"")]
    public void IdleTimeout_null_or_off_in_a_policy_turns_an_inherited_idle_timeout_off(string value)
    {
        var settings = Read($$"""
            { "Reaper": { "Heartbeat": { "IdleTimeout": "30s" }, "Policies": { "p": { "IdleTimeout": {{value}} } } } }
            """);

        Assert.Equal(TimeSpan.FromSeconds(30), settings.DefaultPolicy.IdleTimeout);
        Assert.Null(settings.Policies["p"].IdleTimeout);
    }

    [Fact]
    public void IdleTimeout_takes_a_duration_and_is_off_by_default()
    {
        var settings = Read("""
            { "Reaper": { "Heartbeat": { "IdleTimeout": null }, "Policies": { "p": { "IdleTimeout": "00:05:00" }, "q": {} } } }
            """);

        Assert.Null(settings.DefaultPolicy.IdleTimeout);
        Assert.Equal(TimeSpan.FromMinutes(5), settings.Policies["p"].IdleTimeout);
        Assert.Null(settings.Policies["q"].IdleTimeout);
    }

    [Fact]
    public void A_bad_IdleTimeout_names_its_key_path_and_the_way_to_turn_it_off()
    {
        var error = Assert.Single(Errors("""{ "Reaper": { "Policies": { "p": { "IdleTimeout": "0s" } } } }"""));

        Assert.Equal("Reaper:Policies:p:IdleTimeout", error.Path);
        Assert.Contains("must be a positive duration", error.Message);
        Assert.Contains("\"off\"", error.Message);
    }

    [Theory]
    [InlineData("Mode", "Enforced", "'Enforced' is not one of Off, Observe, Enforce")]
    [InlineData("Mode", "1", "'1' is not one of Off, Observe, Enforce")]
    [InlineData("Mode", "", "'' is not one of Off, Observe, Enforce")]
    [InlineData("Legs", "Frontend", "'Frontend' is not one of Client, Backend, Both")]
    [InlineData("Legs", "3", "'3' is not one of Client, Backend, Both")]
    [InlineData("Legs", "-1", "'-1' is not one of Client, Backend, Both")]
    public void An_unknown_Mode_or_Legs_names_the_key_path_and_the_choices(string key, string value, string message)
    {
        var inHeartbeat = Assert.Single(Errors($$"""{ "Reaper": { "Heartbeat": { "{{key}}": "{{value}}" } } }"""));
        Assert.Equal(new ConfigError($"Reaper:Heartbeat:{key}", message), inHeartbeat);

        var inPolicy = Assert.Single(Errors($$"""{ "Reaper": { "Policies": { "chat": { "{{key}}": "{{value}}" } } } }"""));
        Assert.Equal(new ConfigError($"Reaper:Policies:chat:{key}", message), inPolicy);
    }

    [Fact]
    public void An_unknown_LogFormat_names_its_key_path()
    {
        var error = Assert.Single(Errors("""{ "Reaper": { "LogFormat": "xml" } }"""));

        Assert.Equal(new ConfigError("Reaper:LogFormat", "'xml' is not one of Simple, Json"), error);
    }

    [Theory]
    [InlineData("PingInterval", "0s", "must be a positive duration")]
    [InlineData("PongTimeout", "00:00:00", "must be a positive duration")]
    [InlineData("CloseTimeout", "-00:00:01", "must be a positive duration")]
    [InlineData("PingInterval", "-5s", "must be a positive duration")]
    [InlineData("PongTimeout", "10", "has no unit")]
    [InlineData("CloseTimeout", "soon", "is not a duration")]
    [InlineData("PingInterval", "30d", "longer than the maximum")]
    public void A_bad_duration_names_its_key_path_and_the_problem(string key, string value, string problem)
    {
        var inHeartbeat = Assert.Single(Errors($$"""{ "Reaper": { "Heartbeat": { "{{key}}": "{{value}}" } } }"""));
        Assert.Equal($"Reaper:Heartbeat:{key}", inHeartbeat.Path);
        Assert.Contains($"'{value}'", inHeartbeat.Message);
        Assert.Contains(problem, inHeartbeat.Message);

        var inPolicy = Assert.Single(Errors($$"""{ "Reaper": { "Policies": { "fast": { "{{key}}": "{{value}}" } } } }"""));
        Assert.Equal($"Reaper:Policies:fast:{key}", inPolicy.Path);
        Assert.Contains(problem, inPolicy.Message);
    }

    [Theory]
    [InlineData("""{ "Reaper": { "Heartbeat": { "PingIntreval": "5s" } } }""", "Reaper:Heartbeat:PingIntreval", "unknown setting 'PingIntreval'")]
    [InlineData("""{ "Reaper": { "Policies": { "chat": { "Pong": "5s" } } } }""", "Reaper:Policies:chat:Pong", "unknown setting 'Pong'")]
    [InlineData("""{ "Reaper": { "Polices": { "chat": { "Mode": "Off" } } } }""", "Reaper:Polices", "unknown setting 'Polices'")]
    [InlineData("""{ "Reaper": { "AdminUrl": "http://127.0.0.1:1" } }""", "Reaper:AdminUrl", "unknown setting 'AdminUrl'")]
    public void An_unknown_key_or_typo_names_its_key_path_and_the_known_keys(string json, string path, string problem)
    {
        var error = Assert.Single(Errors(json));

        Assert.Equal(path, error.Path);
        Assert.Contains(problem, error.Message);
        Assert.Contains("(known: ", error.Message);
    }

    [Fact]
    public void Known_keys_are_case_insensitive()
    {
        Assert.Empty(Errors("""{ "reaper": { "heartbeat": { "pinginterval": "5s", "MODE": "OFF" }, "adminurls": "http://127.0.0.1:1" } }"""));
    }

    [Fact]
    public void An_unknown_ReaperPolicy_names_the_route_and_the_defined_policies()
    {
        var error = Assert.Single(Errors("""
            {
              "Reaper": { "Policies": { "chat": {}, "trading": {} } },
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/x" }, "Metadata": { "ReaperPolicy": "chta" } } },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """));

        Assert.Equal("ReverseProxy:Routes:r:Metadata:ReaperPolicy", error.Path);
        Assert.Equal("unknown policy 'chta' (defined under Reaper:Policies: chat, trading)", error.Message);
    }

    [Fact]
    public void An_unknown_ReaperPolicy_says_when_no_policies_are_defined()
    {
        var error = Assert.Single(Errors("""
            {
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/x" }, "Metadata": { "ReaperPolicy": "chat" } } },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """));

        Assert.Equal("ReverseProxy:Routes:r:Metadata:ReaperPolicy", error.Path);
        Assert.Contains("no policies are defined under Reaper:Policies", error.Message);
    }

    [Fact]
    public void A_route_without_ClusterId_names_the_route_and_the_defined_clusters()
    {
        var error = Assert.Single(Errors("""
            {
              "ReverseProxy": {
                "Routes": { "r": { "Match": { "Path": "/x" } } },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """));

        Assert.Equal("ReverseProxy:Routes:r:ClusterId", error.Path);
        Assert.Contains("route has no cluster", error.Message);
        Assert.Contains("(defined: c)", error.Message);
    }

    [Fact]
    public void A_route_with_an_unknown_cluster_names_the_route_and_the_defined_clusters()
    {
        var error = Assert.Single(Errors("""
            {
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "nope", "Match": { "Path": "/x" } } },
                "Clusters": { "b": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } },
                              "a": { "Destinations": { "d": { "Address": "http://127.0.0.1:5002/" } } } }
              }
            }
            """));

        Assert.Equal(new ConfigError("ReverseProxy:Routes:r:ClusterId", "unknown cluster 'nope' (defined: a, b)"), error);
    }

    [Fact]
    public void A_route_with_an_unknown_cluster_says_when_none_are_defined()
    {
        var error = Assert.Single(Errors("""{ "ReverseProxy": { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/x" } } } } }"""));

        Assert.Equal(new ConfigError("ReverseProxy:Routes:r:ClusterId", "unknown cluster 'c' (none are defined)"), error);
    }

    [Fact]
    public void A_route_without_Match_names_the_route()
    {
        var error = Assert.Single(Errors("""
            {
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "c" } },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
              }
            }
            """));

        Assert.Equal("ReverseProxy:Routes:r:Match", error.Path);
        Assert.Contains("route has no Match", error.Message);
    }

    [Theory]
    [InlineData("not a url", "'not a url' is not an absolute http:// or https:// URL")]
    [InlineData("/relative/", "'/relative/' is not an absolute http:// or https:// URL")]
    [InlineData("ftp://127.0.0.1/", "'ftp://127.0.0.1/' is not an absolute http:// or https:// URL")]
    [InlineData("127.0.0.1:5001", "'127.0.0.1:5001' is not an absolute http:// or https:// URL")]
    [InlineData("", "destination has no Address")]
    public void A_bad_destination_Address_names_its_key_path(string address, string message)
    {
        var error = Assert.Single(Errors($$"""
            {
              "ReverseProxy": {
                "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/x" } } },
                "Clusters": { "c": { "Destinations": { "d1": { "Address": "http://127.0.0.1:5001/" }, "d2": { "Address": "{{address}}" } } } }
              }
            }
            """));

        Assert.Equal("ReverseProxy:Clusters:c:Destinations:d2:Address", error.Path);
        Assert.StartsWith(message, error.Message);
    }

    [Theory]
    [InlineData("localhost:9464")]
    [InlineData("127.0.0.1:9464")]
    [InlineData("ftp://127.0.0.1:9464")]
    [InlineData("http://127.0.0.1:1;nonsense")]
    public void Bad_AdminUrls_name_the_key_path_and_the_bad_url(string urls)
    {
        var error = Assert.Single(Errors($$"""{ "Reaper": { "AdminUrls": "{{urls}}" } }"""));

        Assert.Equal("Reaper:AdminUrls", error.Path);
        Assert.Contains("is not an http:// or https:// URL", error.Message);
    }

    [Theory]
    [InlineData("http://127.0.0.1:9464")]
    [InlineData("https://127.0.0.1:9464")]
    [InlineData("http://*:9464")]
    [InlineData("http://+:9464")]
    [InlineData("http://localhost:9464; http://[::1]:9464")]
    public void Good_AdminUrls_including_wildcard_hosts_are_accepted(string urls)
    {
        Assert.Empty(Errors($$"""{ "Reaper": { "AdminUrls": "{{urls}}" } }"""));
    }

    [Fact]
    public void Several_problems_are_reported_together_each_with_its_key_path()
    {
        var errors = Errors("""
            {
              "Reaper": {
                "AdminUrls": "nowhere",
                "Heartbeat": { "Mode": "Sometimes", "PingInterval": "0s", "PongTimout": "5s" },
                "Policies": { "chat": { "Legs": "Neither", "CloseTimeout": "-1s" } }
              },
              "ReverseProxy": {
                "Routes": {
                  "a": { "Match": { "Path": "/a" }, "Metadata": { "ReaperPolicy": "missing" } },
                  "b": { "ClusterId": "c" }
                },
                "Clusters": { "c": { "Destinations": { "d": { "Address": "nope" } } } }
              }
            }
            """);

        Assert.Equal(
            new[]
            {
                "Reaper:AdminUrls",
                "Reaper:Heartbeat:Mode",
                "Reaper:Heartbeat:PingInterval",
                "Reaper:Heartbeat:PongTimout",
                "Reaper:Policies:chat:CloseTimeout",
                "Reaper:Policies:chat:Legs",
                "ReverseProxy:Clusters:c:Destinations:d:Address",
                "ReverseProxy:Routes:a:ClusterId",
                "ReverseProxy:Routes:a:Metadata:ReaperPolicy",
                "ReverseProxy:Routes:b:Match",
            },
            errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.All(errors, e => Assert.StartsWith(e.Path + ": ", e.ToString()));
    }

    [Fact]
    public void A_valid_proxy_section_with_several_routes_has_no_problems()
    {
        Assert.Empty(Errors("{ " + OneRoute + " }"));
    }

    [Theory]
    [InlineData("100", 100)]
    [InlineData("\"2500\"", 2500)]
    [InlineData("null", null)]
    [InlineData("\"auto\"", null)]
    [InlineData("\"AUTO\"", null)]
    public void MaxConnections_is_a_positive_count_or_auto(string value, int? expected)
    {
        var settings = Read($$"""{ "Reaper": { "MaxConnections": {{value}} } }""");

        Assert.Equal(expected, settings.MaxConnections);
        Assert.Equal(expected ?? OpenFileLimit.AutomaticMaxConnections, settings.EffectiveMaxConnections);
    }

    [Theory]
    [InlineData(null, 10_000)]
    [InlineData("\"30s\"", 30_000)]
    [InlineData("\"00:00:02.500\"", 2_500)]
    [InlineData("\"0\"", 0)]
    [InlineData("\"0s\"", 0)]
    [InlineData("\"00:00:00\"", 0)]
    public void Drain_Period_is_a_duration_where_zero_closes_everything_at_once(string? value, int expectedMs)
    {
        var json = value is null ? "{}" : $$"""{ "Reaper": { "Drain": { "Period": {{value}} } } }""";
        var settings = Read(json);

        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), settings.DrainPeriod);
    }

    [Theory]
    [InlineData("\"-1s\"", "must be a positive duration")]
    [InlineData("\"10\"", "has no unit")]
    [InlineData("\"2h\"", "longer than the maximum of 1h")]
    public void A_bad_Drain_Period_names_its_key_path(string value, string problem)
    {
        var error = Assert.Single(Errors($$"""{ "Reaper": { "Drain": { "Period": {{value}} } } }"""));

        Assert.Equal("Reaper:Drain:Period", error.Path);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void An_unknown_key_under_Drain_is_an_error()
    {
        var error = Assert.Single(Errors("""{ "Reaper": { "Drain": { "Periode": "5s" } } }"""));

        Assert.Equal("Reaper:Drain:Periode", error.Path);
        Assert.Contains("unknown setting 'Periode' (known: Period)", error.Message);
    }

    [Fact]
    public void The_longest_close_timeout_bounds_the_drain()
    {
        var settings = Read("""{ "Reaper": { "Heartbeat": { "CloseTimeout": "2s" }, "Policies": { "slow": { "CloseTimeout": "8s" } } } }""");

        Assert.Equal(TimeSpan.FromSeconds(8), settings.LongestCloseTimeout);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("\"many\"")]
    [InlineData("1.5")]
    [InlineData("99999999999")]
    public void A_bad_MaxConnections_names_its_key_path(string value)
    {
        var error = Assert.Single(Errors($$"""{ "Reaper": { "MaxConnections": {{value}} } }"""));

        Assert.Equal("Reaper:MaxConnections", error.Path);
        Assert.Contains("is not a positive whole number of WebSockets", error.Message);
    }

    [Fact]
    public void Transport_defaults_to_the_platform_scheduling()
    {
        var transport = Read("{}").Transport;

        Assert.False(transport.InlineScheduling);
        Assert.False(transport.InlineSocketCompletions);
    }

    [Fact]
    public void Transport_settings_are_read()
    {
        var transport = Read("""{ "Reaper": { "Transport": { "InlineScheduling": true, "InlineSocketCompletions": "true" } } }""").Transport;

        Assert.True(transport.InlineScheduling);
        Assert.True(transport.InlineSocketCompletions);
    }

    [Theory]
    [InlineData("""{ "Reaper": { "Transport": { "InlineScheduling": "sometimes" } } }""", "Reaper:Transport:InlineScheduling", "'sometimes' is not true or false")]
    [InlineData("""{ "Reaper": { "Transport": { "IOQueues": 4 } } }""", "Reaper:Transport:IOQueues", "unknown setting 'IOQueues' (known: InlineScheduling, InlineSocketCompletions)")]
    public void A_bad_Transport_setting_names_its_key_path(string json, string path, string problem)
    {
        var error = Assert.Single(Errors(json));

        Assert.Equal(path, error.Path);
        Assert.Contains(problem, error.Message);
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
