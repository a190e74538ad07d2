import { expect, Page, test } from "@playwright/test";

// Single sign-on through a real OpenID Connect provider (oidc-provider.mjs, started by the
// Playwright config with the users of oidc-users.json): the person never types a seglab password.

async function signOnAtProvider(page: Page, login: string, password: string) {
  await page.goto("/login");
  await page.getByRole("link", { name: "Sign in with Hospital SSO" }).click();
  // The provider's own login and consent pages.
  await page.getByPlaceholder("Enter any login").fill(login);
  await page.locator('input[name="password"]').fill(password);
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
}

test("a radiologist signs on at the hospital's provider, works as a labeler, and logs out of both", async ({ page }) => {
  await signOnAtProvider(page, "oksana", "oksana-e2e-password");
  await expect(page.getByRole("heading", { name: "Cases" })).toBeVisible();
  expect(page.url()).toBe("http://127.0.0.1:3010/");
  const me = await page.evaluate(async () => (await fetch("/session")).json());
  expect(me).toEqual({ username: "oksana", roles: ["labeler"] });

  // Logging out ends the provider's session too: it asks, then sends the browser back here.
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("button", { name: "Yes, sign me out" }).click();
  await expect(page.getByRole("heading", { name: "Log in" })).toBeVisible();
  expect(new URL(page.url()).pathname).toBe("/login");
  expect((await page.evaluate(async () => (await fetch("/session")).status))).toBe(401);

  // Signing on again needs the password again: the provider's session is gone.
  await page.getByRole("link", { name: "Sign in with Hospital SSO" }).click();
  await expect(page.getByPlaceholder("Enter any login")).toBeVisible();
});

test("a wrong password stays at the provider, and a person without a mapped group is refused", async ({ page }) => {
  await page.goto("/login");
  await page.getByRole("link", { name: "Sign in with Hospital SSO" }).click();
  await page.getByPlaceholder("Enter any login").fill("oksana");
  await page.locator('input[name="password"]').fill("not-her-password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Invalid username or password.");
  expect(new URL(page.url()).port).toBe("3011");

  await signOnAtProvider(page, "visitor", "visitor-e2e-password");
  await expect(page.getByRole("heading", { name: "Sign-on failed" })).toBeVisible();
  await expect(page.locator(".error")).toContainText("role");
  expect((await page.evaluate(async () => (await fetch("/session")).status))).toBe(401);
});
